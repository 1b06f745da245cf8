//! What a model costs: prices admins set per million input and output tokens (for a speech
//! model, the input's tokens are the characters it speaks, as vendors bill them) and per image
//! drawn, and the cost of each answer at the price of its day. Amounts are kept in millionths of the currency (prices)
//! and billionths (costs), so sums are exact and a one-token answer still costs something.

use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::store::Conn;
use crate::store::schema::model_prices;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

/// The provider name that prices a local model (a notional cost, for chargeback).
pub const LOCAL: &str = "local";

/// Prices above this per million tokens are typing mistakes.
const MAX_PRICE_MICROS: i64 = 10_000 * 1_000_000;

/// A model's price, as the API and `ayushctl providers prices` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Price {
    pub provider: String,
    pub model: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub per_image: f64,
    pub set_at: i64,
}

#[derive(Queryable)]
struct Row {
    provider: String,
    model: String,
    input: i64,
    output: i64,
    per_image: i64,
    set_at: i64,
}

/// A model's rates, in millionths of the currency: per million input tokens, per million
/// output tokens, per image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub input: i64,
    pub output: i64,
    pub per_image: i64,
}

impl Rates {
    /// What an answer of `prompt` and `completion` tokens and `images` images costs, in
    /// billionths.
    pub fn cost_nanos(self, prompt: i64, completion: i64, images: i64) -> i64 {
        cost_nanos(self.input, self.output, prompt, completion)
            .saturating_add(images.saturating_mul(self.per_image).saturating_mul(1000))
    }
}

impl From<Row> for Price {
    fn from(r: Row) -> Price {
        Price {
            provider: r.provider,
            model: r.model,
            input_per_mtok: micros_to_f64(r.input),
            output_per_mtok: micros_to_f64(r.output),
            per_image: micros_to_f64(r.per_image),
            set_at: r.set_at,
        }
    }
}

/// An amount in millionths as a number of the currency.
pub fn micros_to_f64(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// An amount as people write it (`2.5`, `0.15`, `10`), in millionths: exact, never through a
/// float, so `0.1` is 100000 and not 99999.
pub fn parse_amount(raw: &str) -> Result<i64, String> {
    let bad = || format!("{raw:?} is not an amount: write a number like 2.5 or 0.15");
    let raw_t = raw.trim();
    let (whole, frac) = raw_t.split_once('.').unwrap_or((raw_t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 6 {
        return Err(format!("{raw:?} has more than 6 decimals"));
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole.checked_mul(1_000_000).and_then(|w| w.checked_add(frac)).ok_or_else(bad)
}

/// An amount given in a JSON body: a number or a string holding one.
pub fn amount_of_json(name: &str, value: &serde_json::Value) -> AppResult<i64> {
    let raw = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return Err(AppError::validation(format!("{name} must be a number"))),
    };
    parse_amount(&raw).map_err(|e| AppError::validation(format!("{name}: {e}")))
}

/// What an answer of `prompt` and `completion` tokens costs at `price`, in billionths.
pub fn cost_nanos(input_micros: i64, output_micros: i64, prompt: i64, completion: i64) -> i64 {
    // micros per million tokens = nanos per thousand tokens.
    let nanos =
        (prompt as i128 * input_micros as i128 + completion as i128 * output_micros as i128 + 500) / 1000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// A cost in billionths as a number of the currency.
pub fn nanos_to_f64(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// Where a model's price is kept: its provider and the provider's own name for it.
pub fn key_of(model: &str) -> (&str, &str) {
    model.split_once('/').unwrap_or((LOCAL, model))
}

/// The price of `model` (as the catalog names it).
pub fn of(conn: &mut Conn, model: &str) -> AppResult<Option<Rates>> {
    let (provider, name) = key_of(model);
    let rows: Vec<(i64, i64, i64)> = conn.load(
        model_prices::table
            .filter(model_prices::provider.eq(provider))
            .filter(model_prices::model.eq(name))
            .select((
                model_prices::input_micros_per_mtok,
                model_prices::output_micros_per_mtok,
                model_prices::per_image_micros,
            )),
    )?;
    Ok(rows.into_iter().next().map(|(input, output, per_image)| Rates { input, output, per_image }))
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<Price>> {
    let rows: Vec<Row> = conn.load(
        model_prices::table.order((model_prices::provider.asc(), model_prices::model.asc())).select((
            model_prices::provider,
            model_prices::model,
            model_prices::input_micros_per_mtok,
            model_prices::output_micros_per_mtok,
            model_prices::per_image_micros,
            model_prices::set_at,
        )),
    )?;
    Ok(rows.into_iter().map(Price::from).collect())
}

/// Sets (or replaces) a price; the caller has checked the model exists.
pub fn set(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    provider: &str,
    model: &str,
    rates: Rates,
) -> AppResult<Price> {
    let Rates { input, output, per_image } = rates;
    for (name, v) in [("input_per_mtok", input), ("output_per_mtok", output), ("per_image", per_image)] {
        if !(0..=MAX_PRICE_MICROS).contains(&v) {
            return Err(AppError::validation(format!(
                "{name} must be between 0 and {}",
                MAX_PRICE_MICROS / 1_000_000
            )));
        }
    }
    conn.transaction(|c| {
        c.execute(
            diesel::insert_into(model_prices::table)
                .values((
                    model_prices::provider.eq(provider),
                    model_prices::model.eq(model),
                    model_prices::input_micros_per_mtok.eq(input),
                    model_prices::output_micros_per_mtok.eq(output),
                    model_prices::per_image_micros.eq(per_image),
                    model_prices::set_at.eq(now),
                ))
                .on_conflict((model_prices::provider, model_prices::model))
                .do_update()
                .set((
                    model_prices::input_micros_per_mtok.eq(input),
                    model_prices::output_micros_per_mtok.eq(output),
                    model_prices::per_image_micros.eq(per_image),
                    model_prices::set_at.eq(now),
                )),
        )?;
        let price = Price {
            provider: provider.to_string(),
            model: model.to_string(),
            input_per_mtok: micros_to_f64(input),
            output_per_mtok: micros_to_f64(output),
            per_image: micros_to_f64(per_image),
            set_at: now,
        };
        let details = json!({
            "input_per_mtok": price.input_per_mtok, "output_per_mtok": price.output_per_mtok,
            "per_image": price.per_image,
        });
        let event = Event::new(actor, "price.set", Outcome::Success)
            .target("model", format!("{provider}/{model}"))
            .details(details);
        audit::record(c, now, &event)?;
        Ok(price)
    })
}

pub fn remove(conn: &mut Conn, now: i64, actor: &Actor, provider: &str, model: &str) -> AppResult<()> {
    conn.transaction(|c| {
        let gone = c.execute(diesel::delete(
            model_prices::table
                .filter(model_prices::provider.eq(provider))
                .filter(model_prices::model.eq(model)),
        ))?;
        if gone == 0 {
            return Err(AppError::not_found(format!("{provider}/{model} has no price")));
        }
        let event = Event::new(actor, "price.remove", Outcome::Success)
            .target("model", format!("{provider}/{model}"));
        audit::record(c, now, &event)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_exactly() {
        assert_eq!(parse_amount("2.5"), Ok(2_500_000));
        assert_eq!(parse_amount("0.1"), Ok(100_000));
        assert_eq!(parse_amount(".15"), Ok(150_000));
        assert_eq!(parse_amount("10"), Ok(10_000_000));
        assert_eq!(parse_amount("0.000001"), Ok(1));
        for bad in ["", ".", "-1", "1e3", "1,5", "abc", "1.0000001", "99999999999999999"] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn costs_are_counted_in_billionths() {
        // 1000 tokens in at 2.50 and 500 out at 10.00 per million: 0.0025 + 0.005.
        assert_eq!(cost_nanos(2_500_000, 10_000_000, 1000, 500), 7_500_000);
        // One token at 0.15 per million still costs something.
        assert_eq!(cost_nanos(150_000, 0, 1, 0), 150);
        // Two images at 0.04 each.
        assert_eq!(Rates { input: 0, output: 0, per_image: 40_000 }.cost_nanos(0, 0, 2), 80_000_000);
        assert_eq!(key_of("openai/gpt-4o"), ("openai", "gpt-4o"));
        assert_eq!(key_of("tinyllama"), ("local", "tinyllama"));
    }
}
