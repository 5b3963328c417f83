//! What the pickle machine builds: Python values as a tree, torch's tensors and storages
//! recognised, and the few callables a checkpoint needs interpreted (`_rebuild_tensor_v2`,
//! `OrderedDict`, `set`, …); every other call is kept as a record ([`Object`]).

use std::cell::RefCell;
use std::rc::Rc;

use super::pickle::{PickleError, malformed};

/// A tensor as the pickle describes it: a view (`offset`, `shape`, `stride`, in elements) of a
/// storage saved as its own archive entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// A storage's persistent id: `('storage', torch.FloatStorage, '0', 'cpu', numel)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageRef {
    /// The storage class name (`FloatStorage`, `HalfStorage`, …), which gives the dtype.
    pub class: String,
    /// The archive entry under `data/`.
    pub key: String,
    /// Number of elements in the storage.
    pub numel: usize,
}

/// A call the pickle made: `class(*args)`, then `BUILD` with `state` if it had one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Object {
    pub module: String,
    pub name: String,
    pub args: Value,
    pub state: Option<Value>,
}

pub(crate) type Shared<T> = Rc<RefCell<T>>;

/// What a pickle builds. Lists, dicts and objects are shared, as in Python, so a later `GET`
/// of a memoised container sees the items added after it was memoised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for 64 bits, kept as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Shared<Vec<Value>>),
    Dict(Shared<Vec<(Value, Value)>>),
    /// A module-level name (`GLOBAL`), not yet called.
    Global {
        module: String,
        name: String,
    },
    Object(Shared<Object>),
    /// A persistent id other than a tensor storage.
    Persistent(Box<Value>),
    Storage(StorageRef),
    Tensor(Rc<TensorRef>),
}

impl Value {
    pub(super) fn list(items: Vec<Value>) -> Self {
        Self::List(Rc::new(RefCell::new(items)))
    }

    pub(super) fn dict(items: Vec<(Value, Value)>) -> Self {
        Self::Dict(Rc::new(RefCell::new(items)))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// Elements of a tuple or a list.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Self::Tuple(items) => Some(items.clone()),
            Self::List(items) => Some(items.borrow().clone()),
            _ => None,
        }
    }

    /// A short description for messages: `a dict`, `an argparse.Namespace`, `a tensor`.
    pub fn kind(&self) -> String {
        match self {
            Self::None => "None".into(),
            Self::Bool(_) => "a bool".into(),
            Self::Int(_) | Self::BigInt(_) => "an int".into(),
            Self::Float(_) => "a float".into(),
            Self::Str(_) => "a string".into(),
            Self::Bytes(_) => "bytes".into(),
            Self::Tuple(_) => "a tuple".into(),
            Self::List(_) => "a list".into(),
            Self::Dict(_) => "a dict".into(),
            Self::Global { module, name } => format!("the name {module}.{name}"),
            Self::Object(o) => {
                let o = o.borrow();
                let article = if o.module.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {}.{}", o.module, o.name)
            }
            Self::Persistent(_) => "an external reference".into(),
            Self::Storage(_) => "a tensor storage".into(),
            Self::Tensor(_) => "a tensor".into(),
        }
    }
}

/// An integer from LONG1/LONG4's little-endian two's-complement bytes.
pub(super) fn long_from_bytes(bytes: Vec<u8>) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(bytes);
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut v: i64 = if negative { -1 } else { 0 };
    for &b in bytes.iter().rev() {
        v = (v << 8) | i64::from(b);
    }
    Value::Int(v)
}

pub(super) fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(malformed("a dict is built from an odd number of items"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

pub(super) fn extend(target: &mut Value, items: Vec<Value>) -> Result<(), PickleError> {
    match target {
        Value::List(list) => {
            list.borrow_mut().extend(items);
            Ok(())
        }
        // `list` subclasses and `collections.deque` rebuilt by a call: keep the items as its
        // arguments so nothing is lost, they are never read.
        Value::Object(_) => Ok(()),
        other => Err(malformed(format!("APPEND to {}", other.kind()))),
    }
}

pub(super) fn set_items(target: &mut Value, items: Vec<(Value, Value)>) -> Result<(), PickleError> {
    match target {
        Value::Dict(dict) => {
            dict.borrow_mut().extend(items);
            Ok(())
        }
        // A dict subclass this reader does not know: its items are never read.
        Value::Object(_) => Ok(()),
        other => Err(malformed(format!("SETITEM on {}", other.kind()))),
    }
}

/// `BUILD`: an object's `__setstate__`. For an object it records the state; a dict's state is
/// its attributes (a `state_dict()`'s `_metadata`), not its items, and a rebuilt tensor's is
/// its Python attributes: neither is needed.
pub(super) fn build(target: &mut Value, state: Value) {
    if let Value::Object(o) = target {
        o.borrow_mut().state = Some(state);
    }
}

/// A persistent id; torch uses `('storage', StorageClass, key, location, numel)`.
pub(super) fn persistent(pid: Value) -> Value {
    if let Value::Tuple(items) = &pid
        && let [
            Value::Str(tag),
            Value::Global { name, .. },
            key,
            _location,
            numel,
        ] = items.as_slice()
        && tag == "storage"
        && let Some(numel) = numel.as_int().and_then(|n| usize::try_from(n).ok())
    {
        let key = match key {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => return Value::Persistent(Box::new(pid)),
        };
        return Value::Storage(StorageRef {
            class: name.clone(),
            key,
            numel,
        });
    }
    Value::Persistent(Box::new(pid))
}

fn usizes(v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
    v.items()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_int().and_then(|i| usize::try_from(i).ok()))
                .collect()
        })
        .ok_or_else(|| malformed(format!("a tensor's {what} is not a tuple of sizes")))
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, …)` (and the older `_rebuild_tensor`).
fn rebuild_tensor(args: &[Value]) -> Result<Value, PickleError> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(malformed("a tensor is rebuilt from fewer than 4 arguments"));
    };
    let Value::Storage(storage) = storage else {
        return Err(malformed(format!(
            "a tensor's storage is {}, not a saved storage",
            storage.kind()
        )));
    };
    let offset = offset
        .as_int()
        .and_then(|o| usize::try_from(o).ok())
        .ok_or_else(|| malformed("a tensor's storage offset is not a size"))?;
    let shape = usizes(size, "shape")?;
    let stride = usizes(stride, "strides")?;
    if shape.len() != stride.len() {
        return Err(malformed("a tensor has as many strides as dimensions"));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride,
    })))
}

/// `callable(*args)`, for the callables that rebuild tensors and containers; anything else
/// becomes a recorded [`Object`].
pub(super) fn call(callable: Value, args: Value) -> Result<Value, PickleError> {
    let Value::Global { module, name } = callable else {
        // Calling the result of a call (rare): keep it as an opaque object.
        return Ok(object("<call>", "<result>", args));
    };
    let items = args.items().unwrap_or_default();
    let v = match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => rebuild_tensor(&items)?,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => items
            .into_iter()
            .next()
            .ok_or_else(|| malformed("a parameter is rebuilt without its data"))?,
        ("torch._tensor", "_rebuild_from_type_v2") => {
            // (func, new_type, args, state): a tensor subclass, rebuilt as the plain tensor.
            let mut it = items.into_iter();
            let (Some(func), Some(_), Some(args)) = (it.next(), it.next(), it.next()) else {
                return Err(malformed("_rebuild_from_type_v2 with too few arguments"));
            };
            call(func, args)?
        }
        ("collections", "OrderedDict" | "defaultdict") | ("builtins" | "__builtin__", "dict") => {
            // OrderedDict may be called with a list of pairs (old protocols).
            let pairs = items
                .first()
                .and_then(Value::items)
                .map(|list| {
                    list.into_iter()
                        .filter_map(|pair| match pair.items()?.as_slice() {
                            [k, v] => Some((k.clone(), v.clone())),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Value::dict(pairs)
        }
        ("builtins" | "__builtin__", "set" | "frozenset" | "list") => {
            Value::list(items.first().and_then(Value::items).unwrap_or_default())
        }
        ("builtins" | "__builtin__", "tuple") | ("torch", "Size") => {
            Value::Tuple(items.first().and_then(Value::items).unwrap_or_default())
        }
        // Protocol 0/1 instances: `_reconstructor(cls, object, None)`, then BUILD.
        ("copy_reg" | "copyreg", "_reconstructor") => match items.first() {
            Some(Value::Global { module, name }) => object(module, name, Value::Tuple(Vec::new())),
            _ => object(&module, &name, args),
        },
        ("_codecs", "encode") => match items.first() {
            // Protocol-2 pickles of Python 3 bytes: encode(text, 'latin1').
            Some(Value::Str(s)) => Value::Bytes(s.chars().map(|c| c as u32 as u8).collect()),
            _ => object(&module, &name, args),
        },
        _ => object(&module, &name, args),
    };
    Ok(v)
}

fn object(module: &str, name: &str, args: Value) -> Value {
    Value::Object(Rc::new(RefCell::new(Object {
        module: module.to_string(),
        name: name.to_string(),
        args,
        state: None,
    })))
}

/// A pickled value as JSON, for `args` namespaces: containers and scalars as themselves,
/// anything else as a short description.
pub(super) fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.clone()),
        Value::Tuple(_) | Value::List(_) => {
            J::Array(v.items().unwrap_or_default().iter().map(to_json).collect())
        }
        Value::Dict(items) => J::Object(
            items
                .borrow()
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        other => format!("<{}>", other.kind()),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => J::String(format!("<{}>", other.kind())),
    }
}
