//! A pickle virtual machine that builds a value tree instead of Python objects, for the
//! `data.pkl` of a `torch.save` archive.
//!
//! It runs every opcode of protocols 0–5 that can appear without out-of-band data, and never
//! imports or calls anything: a global is a name, and calling one (REDUCE, NEWOBJ, BUILD) makes
//! an [`Value::Object`] that records the call. The few callables a checkpoint's tensors and
//! containers need are interpreted (`_rebuild_tensor_v2`, `OrderedDict`, `set`, …); every other
//! object (an `argparse.Namespace`, an optimizer's settings, a numpy scalar) is kept as a
//! record, so a reader that does not need it never trips on it.

use std::collections::HashMap;

use super::value::{Value, build, call, extend, long_from_bytes, pairs, persistent, set_items};

/// Why a pickle could not be run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PickleError {
    /// The stream ended before `STOP`.
    #[error("the pickle stream ends before its STOP opcode")]
    Truncated,
    /// Not a pickle of anything this reader can rebuild.
    #[error("{0}")]
    Malformed(String),
    /// Valid pickle this reader does not support (extension registry, out-of-band buffers).
    #[error("{0}")]
    Unsupported(String),
}

pub(super) fn malformed(detail: impl Into<String>) -> PickleError {
    PickleError::Malformed(detail.into())
}

/// Runs the pickle in `data` and returns the object it builds.
pub(crate) fn load(data: &[u8]) -> Result<Value, PickleError> {
    let mut vm = Machine {
        input: data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    vm.run()
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack heights at each MARK (pickle's mark stack).
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        let bytes = self
            .input
            .get(self.pos..end)
            .ok_or(PickleError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, PickleError> {
        let len = self.le(n)?;
        usize::try_from(len).map_err(|_| malformed(format!("length {len} is too large")))
    }

    /// A text argument of the protocol-0 opcodes, without its newline.
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = self.input.get(self.pos..).ok_or(PickleError::Truncated)?;
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    /// Protocol 0's `UNICODE` argument: Latin-1 bytes with `\uXXXX` / `\UXXXXXXXX` escapes
    /// (Python's raw-unicode-escape).
    fn raw_unicode_line(&mut self) -> Result<String, PickleError> {
        let rest = self.input.get(self.pos..).ok_or(PickleError::Truncated)?;
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let chars: Vec<char> = rest[..end].iter().map(|&b| char::from(b)).collect();
        self.pos += end + 1;
        let mut out = String::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let digits = match (chars[i], chars.get(i + 1)) {
                ('\\', Some('u')) => 4,
                ('\\', Some('U')) => 8,
                _ => 0,
            };
            let code = (digits > 0)
                .then(|| chars.get(i + 2..i + 2 + digits))
                .flatten()
                .and_then(|hex| u32::from_str_radix(&hex.iter().collect::<String>(), 16).ok())
                .and_then(char::from_u32);
            if let Some(c) = code {
                out.push(c);
                i += 2 + digits;
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        Ok(out)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(malformed("an opcode pops past a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed("an opcode pops an empty stack"))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack
            .last_mut()
            .ok_or_else(|| malformed("an opcode reads an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed("an opcode needs a MARK that was never pushed"))?;
        if mark > self.stack.len() {
            return Err(malformed("the stack shrank below a MARK"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, id: u64) -> Result<Value, PickleError> {
        self.memo
            .get(&id)
            .cloned()
            .ok_or_else(|| malformed(format!("memo entry {id} is read before it is written")))
    }

    fn memo_put(&mut self, id: u64) -> Result<(), PickleError> {
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| malformed("memoising an empty stack"))?;
        self.memo.insert(id, v);
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let op = self.byte()?;
            match op {
                b'.' => return self.pop(),
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(PickleError::Unsupported(format!(
                            "pickle protocol {proto} is newer than this reader (0–5)"
                        )));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                // Integers.
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.byte()?)
                    } else {
                        self.len(4)?
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.push(long_from_bytes(bytes));
                }
                b'I' => {
                    let text = self.line()?;
                    let v = match text.as_str() {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        t => Value::Int(
                            t.parse()
                                .map_err(|_| malformed(format!("INT argument `{t}`")))?,
                        ),
                    };
                    self.push(v);
                }
                b'L' => {
                    let text = self.line()?;
                    let t = text.trim_end_matches('L');
                    let v = t
                        .parse()
                        .map_or_else(|_| Value::BigInt(t.as_bytes().to_vec()), Value::Int);
                    self.push(v);
                }
                // Floats.
                b'G' => {
                    let bytes: [u8; 8] = self
                        .take(8)?
                        .try_into()
                        .map_err(|_| PickleError::Truncated)?;
                    self.push(Value::Float(f64::from_be_bytes(bytes)));
                }
                b'F' => {
                    let text = self.line()?;
                    let v = text
                        .parse()
                        .map_err(|_| malformed(format!("FLOAT argument `{text}`")))?;
                    self.push(Value::Float(v));
                }
                // Strings and bytes.
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.len(4)?,
                        0x8c => usize::from(self.byte()?),
                        _ => self.len(8)?,
                    };
                    let bytes = self.take(n)?;
                    let s = String::from_utf8(bytes.to_vec())
                        .map_err(|_| malformed("a unicode string is not UTF-8"))?;
                    self.push(Value::Str(s));
                }
                b'V' => {
                    let s = self.raw_unicode_line()?;
                    self.push(Value::Str(s));
                }
                b'T' | b'U' => {
                    // Python 2 `str`: bytes that a Python 3 reader decodes as Latin-1.
                    let n = if op == b'T' {
                        self.len(4)?
                    } else {
                        usize::from(self.byte()?)
                    };
                    let s = self.take(n)?.iter().map(|&b| char::from(b)).collect();
                    self.push(Value::Str(s));
                }
                b'S' => {
                    let text = self.line()?;
                    let s = text.trim_matches(|c| c == '\'' || c == '"').to_string();
                    self.push(Value::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.len(4)?,
                        b'C' => usize::from(self.byte()?),
                        _ => self.len(8)?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.push(Value::Bytes(bytes));
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                // Containers.
                b')' => self.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items));
                }
                // Lists; sets and frozensets are kept as lists.
                b']' | 0x8f => self.push(Value::list(Vec::new())),
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::list(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    extend(self.top()?, vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    extend(self.top()?, items)?;
                }
                b'}' => self.push(Value::dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::dict(pairs(items)?));
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    set_items(self.top()?, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let items = pairs(items)?;
                    set_items(self.top()?, items)?;
                }
                // Stack manipulation.
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    // POP on an empty frame drops the frame's MARK, as CPython does.
                    if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
                        self.pop_mark()?;
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                // Memo.
                b'p' => {
                    let id = self.line()?;
                    let id = id.parse().map_err(|_| malformed("PUT argument"))?;
                    self.memo_put(id)?;
                }
                b'q' => {
                    let id = u64::from(self.byte()?);
                    self.memo_put(id)?;
                }
                b'r' => {
                    let id = self.le(4)?;
                    self.memo_put(id)?;
                }
                0x94 => {
                    let id = self.memo.len() as u64;
                    self.memo_put(id)?;
                }
                b'g' => {
                    let id = self.line()?;
                    let id = id.parse().map_err(|_| malformed("GET argument"))?;
                    let v = self.memo_get(id)?;
                    self.push(v);
                }
                b'h' => {
                    let id = u64::from(self.byte()?);
                    let v = self.memo_get(id)?;
                    self.push(v);
                }
                b'j' => {
                    let id = self.le(4)?;
                    let v = self.memo_get(id)?;
                    self.push(v);
                }
                // Names and calls.
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global { module, name });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push(Value::Global { module, name });
                        }
                        _ => return Err(malformed("STACK_GLOBAL of a non-string name")),
                    }
                }
                // REDUCE and NEWOBJ: callable, args.
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = call(callable, args)?;
                    self.push(v);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let v = call(class, args)?;
                    self.push(v);
                }
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let args = self.pop_mark()?;
                    let v = call(Value::Global { module, name }, Value::Tuple(args))?;
                    self.push(v);
                }
                b'o' => {
                    let mut items = self.pop_mark()?.into_iter();
                    let class = items
                        .next()
                        .ok_or_else(|| malformed("OBJ without a class"))?;
                    let v = call(class, Value::Tuple(items.collect()))?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    build(self.top()?, state);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(persistent(pid));
                }
                b'P' => {
                    let pid = self.line()?;
                    self.push(Value::Persistent(Box::new(Value::Str(pid))));
                }
                0x82..=0x84 => {
                    return Err(PickleError::Unsupported(
                        "the pickle uses the copyreg extension registry".into(),
                    ));
                }
                0x97 | 0x98 => {
                    return Err(PickleError::Unsupported(
                        "the pickle refers to out-of-band buffers".into(),
                    ));
                }
                other => {
                    return Err(malformed(format!(
                        "unknown opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    /// `pickle.dumps(obj, protocol=P)` by CPython 3.11 of
    /// `{"a": 1, "b": [1.5, None, True], "c": ("x", b"yz"), "big": 2**70, "neg": -300,
    ///   "s": {7}, "ns": argparse.Namespace(lr=0.5, name="é"),
    ///   "od": OrderedDict([("k", 2)]), "shared": (l, l)}` with `l = [1]`.
    const PROTOCOLS: [(u8, &str); 4] = [
        (
            0,
            "286470300a56610a70310a49310a7356620a70320a286c70330a46312e350a614e614930310a617356630a70340a2856780a70350a635f636f646563730a656e636f64650a70360a2856797a0a70370a566c6174696e310a70380a7470390a527031300a747031310a73566269670a7031320a4c313138303539313632303731373431313330333432344c0a73566e65670a7031330a492d3330300a7356730a7031340a635f5f6275696c74696e5f5f0a7365740a7031350a28286c7031360a49370a61747031370a527031380a73566e730a7031390a63636f70795f7265670a5f7265636f6e7374727563746f720a7032300a286361726770617273650a4e616d6573706163650a7032310a635f5f6275696c74696e5f5f0a6f626a6563740a7032320a4e747032330a527032340a28647032350a566c720a7032360a46302e350a73566e616d650a7032370a56e90a7032380a736273566f640a7032390a63636f6c6c656374696f6e730a4f726465726564446963740a7033300a2874527033310a566b0a7033320a49320a7373567368617265640a7033330a28286c7033340a49310a616733340a747033350a732e",
        ),
        (
            2,
            "80027d71002858010000006171014b0158010000006271025d710328473ff80000000000004e886558010000006371045801000000787105635f636f646563730a656e636f64650a71065802000000797a710758060000006c6174696e31710886710952710a86710b5803000000626967710c8a0900000000000000004058030000006e6567710d4ad4feffff580100000073710e635f5f6275696c74696e5f5f0a7365740a710f5d71104b076185711152711258020000006e7371136361726770617273650a4e616d6573706163650a7114298171157d71162858020000006c727117473fe000000000000058040000006e616d6571185802000000c3a97119756258020000006f64711a63636f6c6c656374696f6e730a4f726465726564446963740a711b2952711c58010000006b711d4b02735806000000736861726564711e5d711f4b0161681f867120752e",
        ),
        (
            4,
            "800495d2000000000000007d94288c0161944b018c0162945d9428473ff80000000000004e88658c0163948c0178944302797a9486948c03626967948a090000000000000000408c036e6567944ad4feffff8c0173948f94284b07908c026e73948c086172677061727365948c094e616d6573706163659493942981947d94288c026c7294473fe00000000000008c046e616d65948c02c3a99475628c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b02738c06736861726564945d944b0161681c8694752e",
        ),
        (
            5,
            "800595d2000000000000007d94288c0161944b018c0162945d9428473ff80000000000004e88658c0163948c0178944302797a9486948c03626967948a090000000000000000408c036e6567944ad4feffff8c0173948f94284b07908c026e73948c086172677061727365948c094e616d6573706163659493942981947d94288c026c7294473fe00000000000008c046e616d65948c02c3a99475628c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b02738c06736861726564945d944b0161681c8694752e",
        ),
    ];

    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn entry(root: &Value, key: &str) -> Value {
        let Value::Dict(items) = root else {
            panic!("not a dict: {root:?}")
        };
        items
            .borrow()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn every_protocol_builds_the_same_values() {
        for (protocol, hex) in PROTOCOLS {
            let root = load(&bytes(hex)).unwrap();
            assert_eq!(entry(&root, "a"), Value::Int(1), "{protocol}");
            assert_eq!(
                entry(&root, "b").items().unwrap(),
                [Value::Float(1.5), Value::None, Value::Bool(true)],
                "{protocol}"
            );
            assert_eq!(
                entry(&root, "c").items().unwrap(),
                [Value::Str("x".into()), Value::Bytes(b"yz".to_vec())],
                "{protocol}"
            );
            assert!(
                matches!(entry(&root, "big"), Value::BigInt(_)),
                "{protocol}"
            );
            assert_eq!(entry(&root, "neg"), Value::Int(-300), "{protocol}");
            assert_eq!(
                entry(&root, "s").items().unwrap(),
                [Value::Int(7)],
                "{protocol}"
            );
            let Value::Object(ns) = entry(&root, "ns") else {
                panic!("{protocol}: the namespace is not an object")
            };
            let ns = ns.borrow();
            assert_eq!(
                (ns.module.as_str(), ns.name.as_str()),
                ("argparse", "Namespace")
            );
            let state = ns.state.clone().unwrap();
            assert_eq!(entry(&state, "lr"), Value::Float(0.5), "{protocol}");
            assert_eq!(entry(&state, "name"), Value::Str("é".into()), "{protocol}");
            assert_eq!(entry(&entry(&root, "od"), "k"), Value::Int(2), "{protocol}");
            // One list referenced twice is one shared list, as in Python.
            let shared = entry(&root, "shared").items().unwrap();
            let (Value::List(first), Value::List(second)) = (&shared[0], &shared[1]) else {
                panic!("{protocol}: not lists")
            };
            assert!(Rc::ptr_eq(first, second), "{protocol}");
        }
    }

    #[test]
    fn cut_and_malformed_streams_are_errors() {
        let full = bytes(PROTOCOLS[1].1);
        for cut in [0, 1, 10, full.len() / 2, full.len() - 1] {
            assert!(
                matches!(load(&full[..cut]), Err(PickleError::Truncated)),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            load(b"\x80\x02\xff."),
            Err(PickleError::Malformed(_))
        ));
        assert!(matches!(
            load(b"\x80\x02s."),
            Err(PickleError::Malformed(_))
        ));
        assert!(matches!(
            load(b"\x80\x06N."),
            Err(PickleError::Unsupported(_))
        ));
    }
}
