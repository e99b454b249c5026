//! The values a Go template works on: Go's `interface{}` world (nil, bool,
//! int64, float64, string, `[]interface{}`, `map[string]interface{}`) as a
//! Rust enum.
//!
//! Lists are immutable and shared (`Rc`), as sprig's list functions copy.
//! Maps are shared *and* mutable (`Rc<RefCell<_>>`), because Go maps are
//! references and templates rely on it: `{{ $_ := set $d "k" "v" }}`
//! changes `$d`. Maps are `BTreeMap`s because Go sorts map keys whenever it
//! prints, ranges over or marshals a map, so sorted order is Go's order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

/// How deep a value may nest before a walk over it (print, marshal, compare,
/// copy) gives up: bounds the Rust stack those walks use.
pub(crate) const MAX_DEPTH: usize = 100;

/// A template value.
#[derive(Clone, Debug)]
pub(crate) enum V {
    /// Go's nil (and JSON null, and a missing key without missingkey=error).
    Null,
    /// A bool.
    Bool(bool),
    /// An integer (JSON integers and Go's int results).
    Int(i64),
    /// A float64.
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// A list.
    List(Rc<List>),
    /// A map with string keys.
    Map(Rc<MapCell>),
}

/// The items of a list; dropped without recursion (see [`drain_into`]).
#[derive(Debug, Default)]
pub(crate) struct List(pub(crate) Vec<V>);

/// The entries of a map; dropped without recursion (see [`drain_into`]).
#[derive(Debug, Default)]
pub(crate) struct MapCell(pub(crate) RefCell<BTreeMap<String, V>>);

/// Moves the children of `v` onto `stack` when `v` holds the last reference
/// to its container, so the container drops empty.
fn drain_into(v: V, stack: &mut Vec<V>) {
    match v {
        V::List(rc) => {
            if let Ok(mut list) = Rc::try_unwrap(rc) {
                stack.append(&mut list.0);
            }
        }
        V::Map(rc) => {
            if let Ok(map) = Rc::try_unwrap(rc) {
                stack.extend(std::mem::take(&mut *map.0.borrow_mut()).into_values());
            }
        }
        _ => {}
    }
}

// A template can build a chain of maps thousands deep (`set` inside a
// `range`); the default recursive drop would overflow the stack on it, so
// containers drop their children from an explicit stack.
impl Drop for List {
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.0);
        while let Some(v) = stack.pop() {
            drain_into(v, &mut stack);
        }
    }
}

impl Drop for MapCell {
    fn drop(&mut self) {
        let mut stack: Vec<V> = std::mem::take(&mut *self.0.borrow_mut())
            .into_values()
            .collect();
        while let Some(v) = stack.pop() {
            drain_into(v, &mut stack);
        }
    }
}

impl V {
    /// A string value.
    pub(crate) fn str(s: impl Into<Rc<str>>) -> V {
        V::Str(s.into())
    }

    /// A list value.
    pub(crate) fn list(items: Vec<V>) -> V {
        V::List(Rc::new(List(items)))
    }

    /// A map value.
    pub(crate) fn map(entries: BTreeMap<String, V>) -> V {
        V::Map(Rc::new(MapCell(RefCell::new(entries))))
    }

    /// Go's truthiness: false, 0, "", nil and empty lists and maps are
    /// false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            V::Null => false,
            V::Bool(b) => *b,
            V::Int(i) => *i != 0,
            V::Float(f) => *f != 0.0,
            V::Str(s) => !s.is_empty(),
            V::List(l) => !l.0.is_empty(),
            V::Map(m) => !m.0.borrow().is_empty(),
        }
    }

    /// The Go type name, for error messages and `typeOf`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            V::Null => "<nil>",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Float(_) => "float64",
            V::Str(_) => "string",
            V::List(_) => "[]interface {}",
            V::Map(_) => "map[string]interface {}",
        }
    }

    /// The Go kind name, for `kindOf`.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            V::Null => "invalid",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Float(_) => "float64",
            V::Str(_) => "string",
            V::List(_) => "slice",
            V::Map(_) => "map",
        }
    }

    /// From JSON. JSON nests at most 128 deep (serde_json's limit), so the
    /// recursion is bounded.
    pub(crate) fn from_json(value: &Value) -> V {
        match value {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => V::Int(i),
                None => V::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => V::str(s.as_str()),
            Value::Array(items) => V::list(items.iter().map(V::from_json).collect()),
            Value::Object(map) => V::map(
                map.iter()
                    .map(|(k, v)| (k.clone(), V::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The parameters of one Application as the data of a Go template.
    pub(crate) fn from_params(params: &crate::appset::Params) -> V {
        V::map(
            params
                .iter()
                .map(|(k, v)| (k.clone(), V::from_json(v)))
                .collect(),
        )
    }

    /// To JSON.
    ///
    /// # Errors
    /// When the value nests deeper than [`MAX_DEPTH`] or holds a float JSON
    /// cannot carry (NaN, infinity).
    pub(crate) fn to_json(&self) -> Result<Value, String> {
        self.to_json_at(0)
    }

    fn to_json_at(&self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(match self {
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(*b),
            V::Int(i) => Value::from(*i),
            V::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| {
                    format!(
                        "json: unsupported value: {}",
                        crate::template::printf::format_float_v(*f)
                    )
                })?,
            V::Str(s) => Value::String(s.to_string()),
            V::List(l) => Value::Array(
                l.0.iter()
                    .map(|v| v.to_json_at(depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            V::Map(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m.0.borrow().iter() {
                    out.insert(k.clone(), v.to_json_at(depth + 1)?);
                }
                Value::Object(out)
            }
        })
    }

    /// A copy sharing nothing with `self` (sprig's `deepCopy`).
    ///
    /// # Errors
    /// When the value nests deeper than [`MAX_DEPTH`].
    pub(crate) fn deep_copy(&self) -> Result<V, String> {
        self.deep_copy_at(0)
    }

    fn deep_copy_at(&self, depth: usize) -> Result<V, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(match self {
            V::List(l) => V::list(
                l.0.iter()
                    .map(|v| v.deep_copy_at(depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            V::Map(m) => {
                let mut out = BTreeMap::new();
                for (k, v) in m.0.borrow().iter() {
                    out.insert(k.clone(), v.deep_copy_at(depth + 1)?);
                }
                V::map(out)
            }
            other => other.clone(),
        })
    }

    /// Measures the value: (depth, nodes plus string bytes), stopping with
    /// an error past [`MAX_DEPTH`] or `max_size`.
    ///
    /// # Errors
    /// When the value is deeper or larger than allowed.
    pub(crate) fn measure(&self, max_size: usize) -> Result<usize, String> {
        let mut size = 0usize;
        let mut stack: Vec<(V, usize)> = vec![(self.clone(), 0)];
        while let Some((v, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            size += 1;
            match &v {
                V::Str(s) => size += s.len(),
                V::List(l) => stack.extend(l.0.iter().map(|c| (c.clone(), depth + 1))),
                V::Map(m) => {
                    for (k, c) in m.0.borrow().iter() {
                        size += k.len();
                        stack.push((c.clone(), depth + 1));
                    }
                }
                _ => {}
            }
            if size > max_size {
                return Err(format!("value larger than {max_size} bytes"));
            }
        }
        Ok(size)
    }

    /// Whether `self` is, or contains, the map `target` (to refuse a
    /// mutation that would make a map contain itself).
    ///
    /// # Errors
    /// When the value nests deeper than [`MAX_DEPTH`].
    pub(crate) fn contains_map(&self, target: &Rc<MapCell>) -> Result<bool, String> {
        let mut stack: Vec<(V, usize)> = vec![(self.clone(), 0)];
        while let Some((v, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            match &v {
                V::Map(m) => {
                    if Rc::ptr_eq(m, target) {
                        return Ok(true);
                    }
                    stack.extend(m.0.borrow().values().map(|c| (c.clone(), depth + 1)));
                }
                V::List(l) => stack.extend(l.0.iter().map(|c| (c.clone(), depth + 1))),
                _ => {}
            }
        }
        Ok(false)
    }
}

/// The error of a walk that went deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep() -> String {
    format!("value nests deeper than {MAX_DEPTH} levels")
}

/// Go's `==` on template values, as `eq` sees them: numbers compare by
/// value (ints and floats too, unlike Go, since JSON does not tell them
/// apart), containers compare deeply.
///
/// # Errors
/// When a container nests deeper than [`MAX_DEPTH`].
pub(crate) fn equal(a: &V, b: &V) -> Result<bool, String> {
    equal_at(a, b, 0)
}

fn equal_at(a: &V, b: &V, depth: usize) -> Result<bool, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Int(x), V::Float(y)) | (V::Float(y), V::Int(x)) => (*x as f64) == *y,
        (V::Float(x), V::Float(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::List(x), V::List(y)) => {
            if x.0.len() != y.0.len() {
                return Ok(false);
            }
            for (p, q) in x.0.iter().zip(y.0.iter()) {
                if !equal_at(p, q, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        (V::Map(x), V::Map(y)) => {
            if Rc::ptr_eq(x, y) {
                return Ok(true);
            }
            let (x, y) = (x.0.borrow(), y.0.borrow());
            if x.len() != y.len() {
                return Ok(false);
            }
            for ((kx, vx), (ky, vy)) in x.iter().zip(y.iter()) {
                if kx != ky || !equal_at(vx, vy, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_maps_deeper_than_the_stack_drops_without_overflow() {
        let root = V::map(BTreeMap::new());
        let mut cur = root.clone();
        for _ in 0..200_000 {
            let next = V::map(BTreeMap::new());
            if let V::Map(m) = &cur {
                m.0.borrow_mut().insert("x".into(), next.clone());
            }
            cur = next;
        }
        drop(cur);
        assert!(root.measure(usize::MAX).is_err());
        drop(root);
    }

    #[test]
    fn truthiness_follows_go() {
        let cases = [
            (V::Null, false),
            (V::Bool(false), false),
            (V::Int(0), false),
            (V::Float(0.0), false),
            (V::str(""), false),
            (V::list(vec![]), false),
            (V::map(BTreeMap::new()), false),
            (V::Int(-1), true),
            (V::str("0"), true),
            (V::list(vec![V::Null]), true),
        ];
        for (v, want) in cases {
            assert_eq!(v.truthy(), want, "{v:?}");
        }
    }
}
