//! The console's usage and quota pages for admins: `/admin/usage` (tokens, cost, errors and
//! refusals per day as server-drawn SVG, the span's figures and percentiles, a breakdown with
//! its CSV, the top users) and `/admin/quotas` (set and remove). They adapt to the Usage
//! service, as the JSON API and `ayushctl` do.

use super::chart::{self, Series};
use crate::error::AppError;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, Page, UiError, done_flash, render_uncached, see_other, ui_error,
};
use crate::state::AppState;
use crate::usage::quotas::{Quota, QuotaOf, SetQuota};
use crate::usage::{By, Dashboard, Grain, Line, ReportQuery};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/admin/usage", dashboard)
        .get("/admin/usage/export.csv", export)
        .get("/admin/quotas", quotas_page)
        .post("/admin/quotas", quotas_set)
        .post("/admin/quotas/remove", quotas_remove);
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    chrome: Chrome,
    board: Dashboard,
    /// The form's fields as given.
    from: String,
    to: String,
    bys: [By; 5],
    charts: Vec<(String, String)>,
    export: String,
}

impl UsagePage {
    fn number(&self, v: &i64) -> String {
        crate::usage::quotas::group_digits(*v)
    }

    fn tokens(&self, line: &Line) -> String {
        crate::usage::quotas::group_digits(line.prompt_tokens + line.completion_tokens)
    }

    fn money(&self, v: &f64) -> String {
        format!("{v:.2} {}", self.board.currency)
    }

    fn ms(&self, v: &Option<i64>) -> String {
        v.map_or_else(|| "—".into(), |ms| format!("{} ms", crate::usage::quotas::group_digits(ms)))
    }

    fn rate(&self, line: &Line) -> String {
        match line.requests {
            0 => "—".into(),
            n => format!("{:.1} %", line.errors as f64 * 100.0 / n as f64),
        }
    }

    fn date(&self, secs: &i64) -> String {
        crate::clock::format_time(*secs).chars().take(10).collect()
    }

    /// A bar's row in the table: its day, or its day and hour.
    fn bar_when(&self, secs: &i64) -> String {
        match self.board.grain {
            Grain::Day => self.date(secs),
            Grain::Hour => crate::clock::format_time(*secs).chars().take(16).collect(),
        }
    }

    fn period(&self) -> &'static str {
        match self.board.grain {
            Grain::Day => "day",
            Grain::Hour => "hour",
        }
    }
}

/// A bar's label: `12-06` for a day, `14:00` for an hour.
fn bar_label(grain: Grain, start: i64) -> String {
    let shown = crate::clock::format_time(start);
    match grain {
        Grain::Day => shown.chars().skip(5).take(5).collect(),
        Grain::Hour => shown.chars().skip(11).take(5).collect(),
    }
}

fn charts(board: &Dashboard) -> Vec<(String, String)> {
    let labels: Vec<String> = board.bars.iter().map(|d| bar_label(board.grain, d.start)).collect();
    let of = |f: fn(&crate::usage::Bar) -> f64| board.bars.iter().map(f).collect::<Vec<f64>>();
    let count = |v: f64| crate::usage::quotas::group_digits(v.round() as i64);
    let currency = board.currency.clone();
    let period = match board.grain {
        Grain::Day => "day",
        Grain::Hour => "hour",
    };
    vec![
        (
            format!("Tokens per {period}"),
            chart::bars(
                &format!("Tokens per {period}, local and remote models"),
                period,
                &labels,
                &[
                    Series { name: "local", values: of(|d| d.local_tokens as f64) },
                    Series { name: "remote", values: of(|d| d.remote_tokens as f64) },
                ],
                count,
            ),
        ),
        (
            format!("Cost per {period}"),
            chart::bars(
                &format!("Cost per {period} in {currency}"),
                period,
                &labels,
                &[Series { name: "cost", values: of(|d| d.cost) }],
                |v| format!("{v:.2}"),
            ),
        ),
        (
            format!("Errors and refusals per {period}"),
            chart::bars(
                &format!("Errors and refused requests per {period}"),
                period,
                &labels,
                &[
                    Series { name: "errors", values: of(|d| d.errors as f64) },
                    Series { name: "refused", values: of(|d| d.refused as f64) },
                ],
                count,
            ),
        ),
    ]
}

async fn dashboard(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, UiError> {
    let query = query.into_inner();
    let (from, to) = (query.from.clone().unwrap_or_default(), query.to.clone().unwrap_or_default());
    let (board, flash, status) = match state.usage.dashboard(query.clone()).await {
        Ok(board) => (board, None, StatusCode::OK),
        // A span that does not read: say why, and show the last 30 days.
        Err(e) if e.kind == crate::error::ErrorKind::Validation => {
            let last30 = ReportQuery { by: query.by, ..ReportQuery::default() };
            let board = state.usage.dashboard(last30).await.map_err(ui_error(&state, "/admin/usage"))?;
            (board, Some(Flash { kind: "error", text: e.message }), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => return Err(ui_error(&state, "/admin/usage")(e)),
    };
    let export = format!(
        "/admin/usage/export.csv?from={}&to={}&by={}",
        board.span.from,
        board.span.to,
        board.by.as_str()
    );
    let page = UsagePage {
        chrome: Chrome::for_user(&state, &who, "usage", flash),
        charts: charts(&board),
        board,
        from,
        to,
        bys: By::ALL,
        export,
    };
    Ok(render_uncached(&page, status))
}

/// The breakdown as CSV, the columns of `ayushctl usage report -o csv` with every percentile.
async fn export(
    state: web::Data<AppState>,
    Page(_who): Page<AdminOnly>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, UiError> {
    let by = query.by;
    let lines = state.usage.report(query.into_inner()).await.map_err(ui_error(&state, "/admin/usage"))?;
    let mut out = String::from(
        "key,requests,prompt_tokens,completion_tokens,errors,cancelled,refused,cost,mean_ttft_ms,p50_ttft_ms,\
         p95_ttft_ms,mean_duration_ms,p50_duration_ms,p95_duration_ms\r\n",
    );
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for l in lines {
        crate::audit::query::csv_field(&mut out, &l.key);
        let rest = [
            l.requests.to_string(),
            l.prompt_tokens.to_string(),
            l.completion_tokens.to_string(),
            l.errors.to_string(),
            l.cancelled.to_string(),
            l.refused.to_string(),
            format!("{:.6}", l.cost),
            opt(l.mean_ttft_ms),
            opt(l.p50_ttft_ms),
            opt(l.p95_ttft_ms),
            opt(l.mean_duration_ms),
            opt(l.p50_duration_ms),
            opt(l.p95_duration_ms),
        ];
        for cell in rest {
            out.push(',');
            out.push_str(&cell);
        }
        out.push_str("\r\n");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"usage-by-{}.csv\"", by.as_str()),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(out))
}

#[derive(Template)]
#[template(path = "quotas.html")]
struct QuotasPage {
    chrome: Chrome,
    quotas: Vec<Quota>,
    currency: String,
}

impl QuotasPage {
    fn limit(&self, v: &Option<i64>) -> String {
        v.map_or_else(|| "—".into(), crate::usage::quotas::group_digits)
    }

    fn spend(&self, v: &Option<f64>) -> String {
        v.map_or_else(|| "—".into(), |v| format!("{v:.2} {}", self.currency))
    }
}

async fn render_quotas(
    state: &AppState,
    who: &Authed<AdminOnly>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let quotas = state.usage.quotas().await.map_err(ui_error(state, "/admin/quotas"))?;
    let page = QuotasPage {
        chrome: Chrome::for_user(state, who, "quotas", flash),
        quotas,
        currency: state.config.usage.currency.clone(),
    };
    Ok(render_uncached(&page, status))
}

async fn quotas_page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_quotas(&state, &who, done_flash(&q), StatusCode::OK).await
}

#[derive(Deserialize)]
struct QuotaForm {
    /// `user` or `group`.
    kind: String,
    name: String,
    pool: String,
    #[serde(default)]
    tokens_per_day: String,
    #[serde(default)]
    tokens_per_month: String,
    #[serde(default)]
    requests_per_minute: String,
    #[serde(default)]
    concurrent: String,
    #[serde(default)]
    spend_per_month: String,
}

fn whose(kind: &str, name: String) -> Result<(Option<String>, Option<String>), AppError> {
    match kind {
        "user" => Ok((Some(name), None)),
        "group" => Ok((None, Some(name))),
        _ => Err(AppError::validation("choose a user or a group")),
    }
}

fn count(name: &str, raw: &str) -> Result<Option<i64>, AppError> {
    let raw = raw.trim().replace([',', '_', ' '], "");
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| AppError::validation(format!("{name} must be a whole number")))
}

async fn quotas_set(
    state: web::Data<AppState>,
    CsrfForm { who, form: f }: CsrfForm<AdminOnly, QuotaForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let (user, group) = whose(&f.kind, f.name)?;
        let spend = Some(f.spend_per_month.trim().to_string()).filter(|s| !s.is_empty());
        let set = SetQuota {
            user,
            group,
            pool: Some(f.pool),
            tokens_per_day: count("tokens per day", &f.tokens_per_day)?,
            tokens_per_month: count("tokens per month", &f.tokens_per_month)?,
            requests_per_minute: count("requests per minute", &f.requests_per_minute)?,
            concurrent: count("answers at once", &f.concurrent)?,
            spend_per_month: spend.map(serde_json::Value::String),
        };
        state.usage.set_quota(who.actor(), set).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/quotas?done=saved")),
        Err(e) => {
            render_quotas(
                &state,
                &who,
                Some(Flash { kind: "error", text: e.message.clone() }),
                e.kind.status(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    kind: String,
    name: String,
    pool: String,
}

async fn quotas_remove(
    state: web::Data<AppState>,
    CsrfForm { who, form: f }: CsrfForm<AdminOnly, RemoveForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let (user, group) = whose(&f.kind, f.name)?;
        state.usage.remove_quota(who.actor(), QuotaOf { user, group, pool: Some(f.pool) }).await
    }
    .await;
    match result {
        Ok(()) => Ok(see_other("/admin/quotas?done=quota-removed")),
        Err(e) => {
            render_quotas(
                &state,
                &who,
                Some(Flash { kind: "error", text: e.message.clone() }),
                e.kind.status(),
            )
            .await
        }
    }
}
