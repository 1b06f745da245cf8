//! A transcript as OpenAI's `response_format`s write it: plain text, SubRip and WebVTT
//! subtitles, and `verbose_json` with its segments and the language's English name.

use ayush_models::whisper::Transcript;
use serde_json::{Value, json};

/// SubRip: numbered cues, `HH:MM:SS,mmm`.
pub fn srt(t: &Transcript) -> String {
    let mut out = String::new();
    for (i, s) in t.segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            clock(s.start, ','),
            clock(s.end, ','),
            s.text.trim()
        ));
    }
    out
}

/// WebVTT: a header, then cues with `HH:MM:SS.mmm`.
pub fn vtt(t: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in &t.segments {
        out.push_str(&format!("{} --> {}\n{}\n\n", clock(s.start, '.'), clock(s.end, '.'), s.text.trim()));
    }
    out
}

pub fn verbose_json(t: &Transcript) -> Value {
    let segments: Vec<Value> = t
        .segments
        .iter()
        .enumerate()
        .map(|(id, s)| {
            json!({
                "id": id,
                "seek": (s.start * 100.0).round() as u64,
                "start": round(s.start),
                "end": round(s.end),
                "text": s.text,
                "tokens": s.tokens,
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            })
        })
        .collect();
    json!({
        "task": "transcribe",
        "language": language_name(&t.language),
        "duration": round(t.duration),
        "text": t.text(),
        "segments": segments,
        "usage": usage(t),
    })
}

/// What OpenAI reports for audio billed by length.
pub fn usage(t: &Transcript) -> Value {
    json!({"type": "duration", "seconds": t.duration.ceil() as u64})
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn clock(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// The English name Whisper gives a language code, as `verbose_json` reports it.
pub fn language_name(code: &str) -> String {
    LANGUAGES
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, name)| name.to_string())
}

/// Whisper's languages (its `tokenizer.py`), code:name.
const LANGUAGES: &str = "en:english,zh:chinese,de:german,es:spanish,ru:russian,ko:korean,fr:french,\
ja:japanese,pt:portuguese,tr:turkish,pl:polish,ca:catalan,nl:dutch,ar:arabic,sv:swedish,it:italian,\
id:indonesian,hi:hindi,fi:finnish,vi:vietnamese,he:hebrew,uk:ukrainian,el:greek,ms:malay,cs:czech,\
ro:romanian,da:danish,hu:hungarian,ta:tamil,no:norwegian,th:thai,ur:urdu,hr:croatian,bg:bulgarian,\
lt:lithuanian,la:latin,mi:maori,ml:malayalam,cy:welsh,sk:slovak,te:telugu,fa:persian,lv:latvian,\
bn:bengali,sr:serbian,az:azerbaijani,sl:slovenian,kn:kannada,et:estonian,mk:macedonian,br:breton,\
eu:basque,is:icelandic,hy:armenian,ne:nepali,mn:mongolian,bs:bosnian,kk:kazakh,sq:albanian,\
sw:swahili,gl:galician,mr:marathi,pa:punjabi,si:sinhala,km:khmer,sn:shona,yo:yoruba,so:somali,\
af:afrikaans,oc:occitan,ka:georgian,be:belarusian,tg:tajik,sd:sindhi,gu:gujarati,am:amharic,\
yi:yiddish,lo:lao,uz:uzbek,fo:faroese,ht:haitian creole,ps:pashto,tk:turkmen,nn:nynorsk,mt:maltese,\
sa:sanskrit,lb:luxembourgish,my:myanmar,bo:tibetan,tl:tagalog,mg:malagasy,as:assamese,tt:tatar,\
haw:hawaiian,ln:lingala,ha:hausa,ba:bashkir,jw:javanese,su:sundanese,yue:cantonese";

#[cfg(test)]
mod tests {
    use super::*;
    use ayush_models::whisper::Segment;

    fn transcript() -> Transcript {
        let segment = |start: f64, end: f64, text: &str| Segment {
            start,
            end,
            text: text.into(),
            tokens: vec![1, 2],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.1,
            no_speech_prob: 0.01,
        };
        Transcript {
            language: "en".into(),
            duration: 3725.5,
            segments: vec![segment(0.0, 2.5, " Hello there."), segment(3723.04, 3725.5, " Goodbye.")],
        }
    }

    #[test]
    fn subtitles_number_and_time_their_cues() {
        let t = transcript();
        assert_eq!(
            srt(&t),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:02:03,040 --> 01:02:05,500\nGoodbye.\n\n"
        );
        assert!(
            vtt(&t).starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"),
            "{}",
            vtt(&t)
        );
    }

    #[test]
    fn verbose_json_names_the_language_and_counts_the_seconds() {
        let v = verbose_json(&transcript());
        assert_eq!(
            (v["language"].as_str(), v["text"].as_str()),
            (Some("english"), Some("Hello there. Goodbye."))
        );
        assert_eq!(v["segments"][1]["start"], 3723.04);
        assert_eq!(v["usage"]["seconds"], 3726);
        assert_eq!(language_name("yue"), "cantonese");
        assert_eq!(language_name("zz"), "zz");
    }
}
