//! Reading a sentencepiece `spiece.model` (a protobuf `ModelProto`) into the same tokenizer
//! transformers builds from it for T5: a unigram model with the precompiled normaliser,
//! whitespace split plus `▁` metaspace, `</s>` appended, and the `<extra_id_N>` sentinels after
//! the pieces (highest N first).

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// `SentencePiece.Type` values that mark special pieces.
const TYPE_UNKNOWN: u64 = 2;
const TYPE_CONTROL: u64 = 3;

#[derive(Debug, Default)]
struct Piece {
    text: String,
    score: f32,
    kind: u64,
}

#[derive(Debug, Default)]
struct Model {
    pieces: Vec<Piece>,
    precompiled_charsmap: Vec<u8>,
}

pub(crate) fn t5_tokenizer(bytes: &[u8], extra_ids: usize) -> Result<Tokenizer, String> {
    let model = parse_model(bytes)?;
    if model.pieces.is_empty() {
        return Err("holds no pieces: it is not a sentencepiece model".into());
    }
    let unk_id = model
        .pieces
        .iter()
        .position(|p| p.kind == TYPE_UNKNOWN)
        .ok_or("has no unknown piece")?;
    let mut vocab: Vec<(String, f64)> = model
        .pieces
        .iter()
        .map(|p| (p.text.clone(), f64::from(p.score)))
        .collect();
    let sentinels: Vec<String> = (0..extra_ids)
        .rev()
        .map(|i| format!("<extra_id_{i}>"))
        .collect();
    vocab.extend(sentinels.iter().map(|s| (s.clone(), 0.0)));
    let unigram = Unigram::from(vocab, Some(unk_id), false).map_err(|e| e.to_string())?;

    let mut tokenizer = Tokenizer::new(unigram);
    if !model.precompiled_charsmap.is_empty() {
        let normalizer = Precompiled::from(&model.precompiled_charsmap)
            .map_err(|e| format!("normaliser: {e}"))?;
        tokenizer.with_normalizer(Some(normalizer));
    }
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', PrependScheme::Always, true).into(),
    ])));
    let eos_id = tokenizer.token_to_id("</s>").ok_or("has no `</s>` piece")?;
    let post = TemplateProcessing::builder()
        .try_single("$A </s>")
        .map_err(|e| e.clone())?
        .special_tokens(vec![("</s>".to_string(), eos_id)])
        .build()
        .map_err(|e| e.to_string())?;
    tokenizer.with_post_processor(Some(post));
    let specials: Vec<AddedToken> = model
        .pieces
        .iter()
        .filter(|p| p.kind == TYPE_CONTROL || p.kind == TYPE_UNKNOWN)
        .map(|p| p.text.clone())
        .chain(sentinels)
        .map(|t| AddedToken::from(t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// The fields we need of `ModelProto`: pieces (1) and normalizer_spec.precompiled_charsmap (3.2).
fn parse_model(bytes: &[u8]) -> Result<Model, String> {
    let mut model = Model::default();
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(piece)) => model.pieces.push(parse_piece(piece)?),
            (3, Value::Bytes(spec)) => {
                for field in Fields::new(spec) {
                    if let (2, Value::Bytes(map)) = field? {
                        model.precompiled_charsmap = map.to_vec();
                    }
                }
            }
            _ => {}
        }
    }
    Ok(model)
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, String> {
    // Type defaults to NORMAL (1) when absent.
    let mut piece = Piece {
        kind: 1,
        ..Piece::default()
    };
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(text)) => {
                piece.text =
                    String::from_utf8(text.to_vec()).map_err(|_| "a piece is not UTF-8")?;
            }
            (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Value::Varint(kind)) => piece.kind = kind,
            _ => {}
        }
    }
    Ok(piece)
}

enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the (field number, value) pairs of one protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or("ends inside a number")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("has an over-long number".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err("is truncated".into());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed64
                }
                2 => {
                    let len =
                        usize::try_from(self.varint()?).map_err(|_| "has an impossible length")?;
                    Value::Bytes(self.take(len)?)
                }
                5 => {
                    let b = self.take(4)?;
                    Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                other => return Err(format!("has an unknown protobuf wire type {other}")),
            };
            Ok((key >> 3, value))
        })();
        if field.is_err() {
            // Stop after the first error.
            self.rest = &[];
        }
        Some(field)
    }
}
