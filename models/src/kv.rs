//! A sequence's KV cache: the keys and values it has read, layer by layer, and the tokens they
//! came from. The engine keeps one per conversation it serves or has recently served, so a
//! cache outlives its request and the next turn reads only what is new.

/// Keys and values, `width` values per position and layer, position after position: a cached
/// prefix is extended or cut back by any number of tokens.
#[derive(Default)]
pub struct KvCache {
    pub(crate) layers: Vec<(Vec<f32>, Vec<f32>)>,
    pub(crate) width: usize,
    pub(crate) tokens: Vec<u32>,
    /// Positions the request using the cache may reach: memory for them is set aside in one
    /// go, so a cache never holds much more than the scheduler accounted for.
    pub(crate) expect: usize,
}

impl KvCache {
    /// The tokens whose keys and values are held, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Keeps the first `n` positions.
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        for (k, v) in &mut self.layers {
            k.truncate(n * self.width);
            v.truncate(n * self.width);
        }
    }

    /// How many leading tokens this cache shares with `prompt`.
    pub fn shared_prefix(&self, prompt: &[u32]) -> usize {
        self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count()
    }

    /// A new cache holding a copy of the first `n` positions (a shared system prompt, say).
    pub fn copy_prefix(&self, n: usize) -> KvCache {
        let n = n.min(self.len());
        KvCache {
            layers: self
                .layers
                .iter()
                .map(|(k, v)| (k[..n * self.width].to_vec(), v[..n * self.width].to_vec()))
                .collect(),
            width: self.width,
            tokens: self.tokens[..n].to_vec(),
            expect: 0,
        }
    }

    /// Memory the cache holds now.
    pub fn bytes(&self) -> usize {
        let values: usize = self.layers.iter().map(|(k, v)| k.capacity() + v.capacity()).sum();
        values * std::mem::size_of::<f32>() + self.tokens.capacity() * std::mem::size_of::<u32>()
    }

    /// Sets aside memory for `positions` in all, when the cache grows.
    pub fn expect(&mut self, positions: usize) {
        self.expect = positions;
    }

    /// Gives back memory beyond what the held positions need.
    pub fn shrink(&mut self) {
        for (k, v) in &mut self.layers {
            k.shrink_to_fit();
            v.shrink_to_fit();
        }
        self.tokens.shrink_to_fit();
    }
}
