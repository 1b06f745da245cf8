//! Whisper's weights from a CTranslate2 conversion, laid out as candle's Whisper model (Hugging
//! Face's names) expects them. CTranslate2 fuses attention's projections (self-attention's
//! query, key and value in one matrix; cross-attention's key and value in another) and names
//! layer norms `gamma`/`beta`; they are split and renamed here, widened to f32. The key
//! projections have no bias in Whisper: the fused bias holds zeros there, and is dropped.

use crate::ct2::{Ct2Error, Ct2Model};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;
use std::collections::HashMap;

/// Whisper's audio context (30 s of 10 ms frames, halved by the second convolution).
const AUDIO_CONTEXT: usize = 1500;

/// candle's Whisper config and its weights by name, ready for `VarBuilder::from_tensors`.
pub struct WhisperWeights {
    pub config: Config,
    pub tensors: HashMap<String, Tensor>,
}

fn count_layers(m: &Ct2Model, side: &str) -> usize {
    (0..).take_while(|i| m.variable(&format!("{side}/layer_{i}/ffn/linear_0/weight")).is_ok()).count()
}

pub fn from_ct2(m: &Ct2Model, device: &Device) -> Result<WhisperWeights, Ct2Error> {
    if m.spec != "WhisperSpec" {
        return Err(Ct2Error::Corrupt(format!("the model is a {}, not Whisper", m.spec)));
    }
    let t = |name: &str| m.tensor(name, device);
    let shape = |name: &str| m.variable(name).map(|v| v.shape.clone());
    let heads = |name: &str| {
        m.integer(name)
            .and_then(|h| usize::try_from(h).map_err(|_| Ct2Error::Corrupt(format!("{name} is {h}"))))
    };
    let embeddings = shape("decoder/embeddings/weight")?;
    let conv1 = shape("encoder/conv1/weight")?;
    let positions = shape("decoder/position_encodings/encodings")?;
    let (Some(&vocab_size), Some(&d_model), Some(&num_mel_bins), Some(&max_target_positions)) =
        (embeddings.first(), embeddings.get(1), conv1.get(1), positions.first())
    else {
        return Err(Ct2Error::Corrupt("the embeddings or the first convolution have no shape".into()));
    };
    let config = Config {
        num_mel_bins,
        max_source_positions: AUDIO_CONTEXT,
        d_model,
        encoder_attention_heads: heads("encoder/num_heads")?,
        encoder_layers: count_layers(m, "encoder"),
        vocab_size,
        max_target_positions,
        decoder_attention_heads: heads("decoder/num_heads")?,
        decoder_layers: count_layers(m, "decoder"),
        suppress_tokens: Vec::new(),
    };
    let mut out = HashMap::new();
    let bad = |e: candle_core::Error| Ct2Error::Corrupt(e.to_string());
    let mut put = |name: String, tensor: Tensor| {
        out.insert(name, tensor);
    };
    let norm = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<(), Ct2Error> {
        put(format!("{to}.weight"), t(&format!("{from}/gamma"))?);
        put(format!("{to}.bias"), t(&format!("{from}/beta"))?);
        Ok(())
    };
    let linear = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<(), Ct2Error> {
        put(format!("{to}.weight"), t(&format!("{from}/weight"))?);
        put(format!("{to}.bias"), t(&format!("{from}/bias"))?);
        Ok(())
    };
    // A fused projection split into `parts` along its outputs. The key's part of the bias must
    // be zeros (Whisper's key has none): that is what shows the parts are in the order named.
    let fused = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &[&str]| -> Result<(), Ct2Error> {
        let (w, b) = (t(&format!("{from}/weight"))?, t(&format!("{from}/bias"))?);
        let n = w.dim(0).map_err(bad)? / to.len();
        for (i, part) in to.iter().enumerate() {
            put(format!("{part}.weight"), w.narrow(0, i * n, n).map_err(bad)?);
            let bias = b.narrow(0, i * n, n).map_err(bad)?;
            if part.ends_with("k_proj") {
                let largest =
                    bias.abs().and_then(|a| a.max(0)).and_then(|m| m.to_scalar::<f32>()).map_err(bad)?;
                if largest != 0.0 {
                    return Err(Ct2Error::Corrupt(format!(
                        "{from} is not laid out as Whisper's fused projections: the key's bias is not zero"
                    )));
                }
            } else {
                put(format!("{part}.bias"), bias);
            }
        }
        Ok(())
    };
    for side in ["encoder", "decoder"] {
        let to = format!("model.{side}");
        let layers = if side == "encoder" { config.encoder_layers } else { config.decoder_layers };
        for i in 0..layers {
            let (from, to) = (format!("{side}/layer_{i}"), format!("{to}.layers.{i}"));
            norm(
                &mut put,
                &format!("{from}/self_attention/layer_norm"),
                &format!("{to}.self_attn_layer_norm"),
            )?;
            let qkv = [
                format!("{to}.self_attn.q_proj"),
                format!("{to}.self_attn.k_proj"),
                format!("{to}.self_attn.v_proj"),
            ];
            fused(&mut put, &format!("{from}/self_attention/linear_0"), &qkv.each_ref().map(String::as_str))?;
            linear(
                &mut put,
                &format!("{from}/self_attention/linear_1"),
                &format!("{to}.self_attn.out_proj"),
            )?;
            if side == "decoder" {
                norm(
                    &mut put,
                    &format!("{from}/attention/layer_norm"),
                    &format!("{to}.encoder_attn_layer_norm"),
                )?;
                linear(
                    &mut put,
                    &format!("{from}/attention/linear_0"),
                    &format!("{to}.encoder_attn.q_proj"),
                )?;
                let kv = [format!("{to}.encoder_attn.k_proj"), format!("{to}.encoder_attn.v_proj")];
                fused(&mut put, &format!("{from}/attention/linear_1"), &kv.each_ref().map(String::as_str))?;
                linear(
                    &mut put,
                    &format!("{from}/attention/linear_2"),
                    &format!("{to}.encoder_attn.out_proj"),
                )?;
            }
            norm(&mut put, &format!("{from}/ffn/layer_norm"), &format!("{to}.final_layer_norm"))?;
            linear(&mut put, &format!("{from}/ffn/linear_0"), &format!("{to}.fc1"))?;
            linear(&mut put, &format!("{from}/ffn/linear_1"), &format!("{to}.fc2"))?;
        }
        norm(&mut put, &format!("{side}/layer_norm"), &format!("{to}.layer_norm"))?;
    }
    linear(&mut put, "encoder/conv1", "model.encoder.conv1")?;
    linear(&mut put, "encoder/conv2", "model.encoder.conv2")?;
    // The encoder's positions are sinusoids candle computes itself; the decoder's are learned.
    put("model.decoder.embed_positions.weight".into(), t("decoder/position_encodings/encodings")?);
    put("model.decoder.embed_tokens.weight".into(), t("decoder/embeddings/weight")?);
    debug_assert!(out.values().all(|t| t.dtype() == DType::F32));
    Ok(WhisperWeights { config, tensors: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct2::tests::file;

    /// A Whisper of one layer a side, 4 wide, in CTranslate2's layout; `key_bias` fills the
    /// key's part of the fused biases.
    fn tiny(key_bias: f32) -> Ct2Model {
        let d = 4u32;
        let f32s = |n: u32, v: f32| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
        let fused_bias = |parts: u32, key: u32| -> Vec<u8> {
            (0..parts * d).flat_map(|i| if i / d == key { key_bias } else { 0.5 }.to_le_bytes()).collect()
        };
        let mut vars: Vec<(String, Vec<u32>, u8, Vec<u8>)> = vec![
            ("encoder/num_heads".into(), vec![], 2, 1i16.to_le_bytes().to_vec()),
            ("decoder/num_heads".into(), vec![], 2, 1i16.to_le_bytes().to_vec()),
            ("encoder/conv1/weight".into(), vec![d, 2, 3], 0, f32s(d * 6, 0.1)),
            ("encoder/conv1/bias".into(), vec![d], 0, f32s(d, 0.0)),
            ("encoder/conv2/weight".into(), vec![d, d, 3], 0, f32s(d * d * 3, 0.1)),
            ("encoder/conv2/bias".into(), vec![d], 0, f32s(d, 0.0)),
            ("decoder/embeddings/weight".into(), vec![8, d], 0, f32s(8 * d, 0.1)),
            ("decoder/position_encodings/encodings".into(), vec![4, d], 0, f32s(4 * d, 0.0)),
        ];
        let mut add = |name: String, shape: Vec<u32>, bytes: Vec<u8>| vars.push((name, shape, 0, bytes));
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            let mut norm = |at: &str| {
                add(format!("{at}/gamma"), vec![d], f32s(d, 1.0));
                add(format!("{at}/beta"), vec![d], f32s(d, 0.0));
            };
            norm(&format!("{l}/self_attention/layer_norm"));
            norm(&format!("{l}/ffn/layer_norm"));
            norm(&format!("{side}/layer_norm"));
            if side == "decoder" {
                norm(&format!("{l}/attention/layer_norm"));
            }
            add(format!("{l}/self_attention/linear_0/weight"), vec![3 * d, d], f32s(3 * d * d, 0.1));
            add(format!("{l}/self_attention/linear_0/bias"), vec![3 * d], fused_bias(3, 1));
            for linear in ["self_attention/linear_1", "attention/linear_0", "attention/linear_2"] {
                if side == "decoder" || linear.starts_with("self") {
                    add(format!("{l}/{linear}/weight"), vec![d, d], f32s(d * d, 0.1));
                    add(format!("{l}/{linear}/bias"), vec![d], f32s(d, 0.0));
                }
            }
            if side == "decoder" {
                add(format!("{l}/attention/linear_1/weight"), vec![2 * d, d], f32s(2 * d * d, 0.1));
                add(format!("{l}/attention/linear_1/bias"), vec![2 * d], fused_bias(2, 0));
            }
            // Whisper's feed-forward is four times as wide as the model.
            add(format!("{l}/ffn/linear_0/weight"), vec![4 * d, d], f32s(4 * d * d, 0.1));
            add(format!("{l}/ffn/linear_0/bias"), vec![4 * d], f32s(4 * d, 0.0));
            add(format!("{l}/ffn/linear_1/weight"), vec![d, 4 * d], f32s(4 * d * d, 0.1));
            add(format!("{l}/ffn/linear_1/bias"), vec![d], f32s(d, 0.0));
        }
        let vars: Vec<(&str, &[u32], u8, Vec<u8>)> =
            vars.iter().map(|(n, s, k, b)| (n.as_str(), s.as_slice(), *k, b.clone())).collect();
        Ct2Model::parse(file(&vars, &[])).unwrap()
    }

    #[test]
    fn weights_are_split_renamed_and_load_into_candles_whisper() {
        let w = from_ct2(&tiny(0.0), &Device::Cpu).unwrap();
        assert_eq!((w.config.d_model, w.config.encoder_layers, w.config.decoder_layers), (4, 1, 1));
        assert_eq!((w.config.num_mel_bins, w.config.vocab_size, w.config.max_target_positions), (2, 8, 4));
        let q_bias = w.tensors["model.decoder.layers.0.self_attn.q_proj.bias"].to_vec1::<f32>().unwrap();
        assert_eq!(q_bias, [0.5; 4]);
        assert!(!w.tensors.contains_key("model.encoder.layers.0.self_attn.k_proj.bias"));
        assert_eq!(w.tensors["model.decoder.layers.0.encoder_attn.v_proj.weight"].dims(), [4, 4]);
        let vb = candle_nn::VarBuilder::from_tensors(w.tensors, DType::F32, &Device::Cpu);
        candle_transformers::models::whisper::model::Whisper::load(&vb, w.config).unwrap();
    }

    #[test]
    fn projections_in_another_order_are_refused() {
        let refused = from_ct2(&tiny(0.25), &Device::Cpu).err().unwrap().to_string();
        assert!(refused.contains("the key's bias is not zero"), "{refused}");
    }
}
