//! The key/value cache of incremental decoding: each layer's rotated keys and values of every
//! position seen so far, so a new token costs one position's work instead of the whole prefix.

use candle_core::Tensor;

/// Per layer, keys and values [1, kv_heads, T, head_dim] in the model's dtype.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<(Option<Tensor>, Option<Tensor>)>,
    len: usize,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions held: the next token's position.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything (a new conversation).
    pub fn clear(&mut self) {
        self.layers.clear();
        self.len = 0;
    }

    /// One slot per layer, created empty on first use.
    pub(crate) fn layers_mut(
        &mut self,
        layers: usize,
    ) -> impl Iterator<Item = &mut (Option<Tensor>, Option<Tensor>)> {
        if self.layers.len() != layers {
            self.layers = vec![(None, None); layers];
        }
        self.layers.iter_mut()
    }

    pub(crate) fn advance(&mut self, positions: usize) {
        self.len += positions;
    }
}
