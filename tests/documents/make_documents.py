"""Writes the documents the ingestion tests read, with the libraries people's own tools use:
python-docx, python-pptx and openpyxl (Office Open XML) and reportlab (PDF). Also the hostile
ones: a password-protected PDF, a PDF claiming more pages than Ayush reads, a Word file that is
a ZIP bomb, one with absurdly deep XML, and a scanned-looking PDF with no text layer.

usage: make_documents.py OUTDIR
"""

import io
import sys
import zipfile
from pathlib import Path

import docx
import openpyxl
import pptx
from pptx.util import Inches
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def word(path: Path) -> None:
    d = docx.Document()
    d.core_properties.title = "Employee handbook"
    d.add_heading("Employee handbook", level=1)
    d.add_paragraph("Welcome to the company. Read this before your first day.")
    d.add_heading("Leave", level=2)
    d.add_paragraph("Every employee has twenty-eight days of annual leave, plus public holidays.")
    d.add_page_break()
    d.add_heading("Expenses", level=2)
    table = d.add_table(rows=3, cols=2)
    for row, (a, b) in zip(table.rows, [("Item", "Limit"), ("Taxi", "60 euros"), ("Dinner", "45 euros")]):
        row.cells[0].text, row.cells[1].text = a, b
    d.add_paragraph("Receipts are kept for seven years.")
    d.save(path)


def slides(path: Path) -> None:
    p = pptx.Presentation()
    for title, body in [
        ("Quarterly results", "Revenue grew by nine percent."),
        ("Hiring plan", "We open fourteen engineering roles in the spring."),
        ("Risks", "Supplier delays in the semiconductor market."),
    ]:
        s = p.slides.add_slide(p.slide_layouts[1])
        s.shapes.title.text = title
        s.placeholders[1].text = body
    s = p.slides.add_slide(p.slide_layouts[6])
    box = s.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
    box.text_frame.text = "Questions go to the strategy office."
    p.core_properties.title = "Board deck"
    p.save(path)


def workbook(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Budget"
    for row in [("Department", "Budget", "Owner"), ("Marketing", 120000, "Priya"), ("Research", 450000, "Tomas")]:
        ws.append(row)
    ws2 = wb.create_sheet("Offices")
    for row in [("City", "Desks"), ("Lisbon", 80), ("Osaka", 35)]:
        ws2.append(row)
    ws2["D1"] = "=SUM(B2:B3)"
    wb.properties.title = "Budget 2027"
    wb.save(path)


def pdf(path: Path, pages: list[str], encrypt: str | None = None, title: str = "Safety manual") -> None:
    c = canvas.Canvas(str(path), pagesize=A4, encrypt=encrypt)
    c.setTitle(title)
    for text in pages:
        y = 780
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()


def pdf_without_text(path: Path) -> None:
    c = canvas.Canvas(str(path), pagesize=A4)
    c.rect(72, 600, 300, 100, fill=1)  # a shape, as a scan's image would be: no text layer
    c.showPage()
    c.save()


def zip_bomb(path: Path) -> None:
    """A valid-looking Word file whose document part inflates to about 1 GiB of spaces."""
    real = io.BytesIO()
    word(real)
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                out.writestr(item, src.read(item.filename))
        with out.open("word/document.xml", "w", force_zip64=True) as w:
            w.write(b'<?xml version="1.0"?><w:document xmlns:w="x"><w:body><w:p><w:r><w:t>')
            chunk = b" " * (1 << 20)
            for _ in range(1024):
                w.write(chunk)
            w.write(b"</w:t></w:r></w:p></w:body></w:document>")


def deep_xml(path: Path) -> None:
    real = io.BytesIO()
    word(real)
    depth = 100_000
    body = b'<?xml version="1.0"?><w:document xmlns:w="x">' + b"<w:b>" * depth + b"</w:b>" * depth + b"</w:document>"
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = body if item.filename == "word/document.xml" else src.read(item.filename)
            out.writestr(item.filename, data)


def main() -> None:
    out = Path(sys.argv[1])
    good = out / "good"
    bad = out / "bad"
    good.mkdir(parents=True, exist_ok=True)
    bad.mkdir(parents=True, exist_ok=True)
    word(good / "handbook.docx")
    slides(good / "board.pptx")
    workbook(good / "budget.xlsx")
    pdf(good / "safety.pdf", [
        "Safety manual\n\nWear a helmet on the factory floor at all times.",
        "Fire exits\n\nThe assembly point is the north car park.",
        "First aid\n\nThe first aid kit is beside the canteen door.",
    ])
    pdf(bad / "locked.pdf", ["Secret board minutes."], encrypt="hunter2")
    pdf(bad / "huge.pdf", [""] * 5001, title="Huge")
    pdf_without_text(bad / "scan.pdf")
    zip_bomb(bad / "bomb.docx")
    deep_xml(bad / "deep.docx")


if __name__ == "__main__":
    main()
