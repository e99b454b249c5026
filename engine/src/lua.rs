//! Custom health scripts (Argo CD's `health.lua`) run in an embedded Lua 5.1,
//! sandboxed and bounded in instructions, time and memory.
//!
//! A script gets the live object as the global `obj` (JSON `null`s are
//! `nil`, as in Argo CD) and returns a table with `status` and `message`.
//! Each run has a fresh Lua state, thrown away afterwards, so nothing a
//! script does outlives it.
//!
//! The sandbox: the base library without `dofile`, `loadfile`, `load` and
//! `loadstring` (nothing is read from disk and no bytecode is loaded),
//! `table`, `string`, `math` and the part of `os` Argo CD lets scripts use
//! (`time`, `date`, plus `clock` and `difftime`). `require` returns those
//! libraries by name (`local os = require("os")` works as in Argo CD) and
//! nothing else. `useOpenLibs` adds `io` without `popen`; `os.execute`,
//! `os.exit`, `os.getenv`, `os.remove`, `os.rename`, `os.tmpname`,
//! `os.setlocale`, `debug` and `coroutine` are never there. `print` goes to
//! Plumb's log at debug level.
//!
//! Not the settings (`core::customizations`) nor the choice of a rule for
//! an object (`settings`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Value as LuaValue, VmState};
use serde_json::Value;

use crate::model::{Health, HealthStatusCode};

/// The bounds of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Lua VM instructions (a health script needs a few thousand).
    pub instructions: u64,
    /// Wall-clock time, for long calls into the libraries between two
    /// instruction checks.
    pub time: Duration,
    /// Bytes of memory the state may hold, the object included.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            instructions: 10_000_000,
            time: Duration::from_secs(1),
            memory: 64 << 20,
        }
    }
}

/// How often the hook looks at the budget.
const CHECK_EVERY: u32 = 10_000;

/// Why a script gave no health.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    /// The script does not compile, or raised an error.
    #[error("{0}")]
    Lua(String),
    /// It ran longer than its instruction budget: stopped.
    #[error("stopped after {0} Lua instructions (does the script loop forever?)")]
    Instructions(u64),
    /// It ran longer than its time: stopped.
    #[error("stopped after {0:?}")]
    Time(Duration),
    /// It needed more memory than it may have.
    #[error("ran out of memory (limit {0} bytes)")]
    Memory(usize),
    /// It returned something else than a table (or nothing).
    #[error("expect table output from Lua script, not {0}")]
    NotATable(String),
    /// The table's `status` or `message` is not a string.
    #[error("{0}")]
    BadField(String),
    /// The sandbox could not be built (a bug, or no memory).
    #[error("cannot set up the Lua sandbox: {0}")]
    Sandbox(String),
}

/// Whether and why the hook stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Running,
    Instructions,
    Time,
}

/// Built before the script runs, so none of it counts against its budget.
/// `pcall` and `xpcall` pass the hook's stop on: a script cannot catch it
/// and go on looping.
const PRELUDE: &str = r#"
local stopped = ...
dofile, loadfile, load, loadstring, coroutine = nil, nil, nil, nil, nil
local os_lib = os
os = { time = os_lib.time, date = os_lib.date, clock = os_lib.clock, difftime = os_lib.difftime }
if io ~= nil then io.popen = nil end
local loaded = { string = string, table = table, math = math, os = os, io = io }
function require(name)
  local m = loaded[name]
  if m == nil then
    error("module '" .. tostring(name) .. "' not found: Plumb's sandbox has only the standard libraries", 2)
  end
  return m
end
package = nil
local raw_pcall, raw_xpcall = pcall, xpcall
local function pass_stop(ok, ...)
  if not ok and stopped() then error((...), 0) end
  return ok, ...
end
function pcall(f, ...) return pass_stop(raw_pcall(f, ...)) end
function xpcall(f, handler) return pass_stop(raw_xpcall(f, handler)) end
"#;

/// Whether `script` compiles; the error as Lua gives it otherwise.
///
/// # Errors
/// [`ScriptError::Lua`] with the syntax error.
pub fn check(script: &str) -> Result<(), ScriptError> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::default())
        .map_err(|e| ScriptError::Sandbox(e.to_string()))?;
    lua.load(script)
        .set_name("=health.lua")
        .into_function()
        .map(drop)
        .map_err(|e| ScriptError::Lua(lua_message(&e)))
}

/// Runs a health script on `object`: `Ok(None)` when it returns nothing
/// (or an empty table), which Argo CD takes as no health.
///
/// # Errors
/// When it does not compile, raises an error, exceeds a limit, or returns
/// something that is not a health: see [`ScriptError`].
pub fn health(
    script: &str,
    use_open_libs: bool,
    object: &Value,
    limits: &Limits,
) -> Result<Option<Health>, ScriptError> {
    let mut libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS;
    if use_open_libs {
        libs |= StdLib::IO;
    }
    let sandbox = |e: mlua::Error| ScriptError::Sandbox(e.to_string());
    let lua = Lua::new_with(libs, LuaOptions::default()).map_err(sandbox)?;
    let stop = Rc::new(Cell::new(Stop::Running));
    let stopped = {
        let stop = Rc::clone(&stop);
        lua.create_function(move |_, ()| Ok(stop.get() != Stop::Running))
            .map_err(sandbox)?
    };
    lua.load(PRELUDE)
        .set_name("=sandbox")
        .call::<()>(stopped)
        .map_err(sandbox)?;
    let print = lua
        .create_function(|_, args: mlua::Variadic<LuaValue>| {
            let text: Vec<String> = args.iter().map(|v| format!("{v:?}")).collect();
            tracing::debug!(output = %text.join("\t"), "health.lua print");
            Ok(())
        })
        .map_err(sandbox)?;
    lua.globals().set("print", print).map_err(sandbox)?;
    let obj = to_lua(&lua, object).map_err(|e| match e {
        mlua::Error::MemoryError(_) => ScriptError::Memory(limits.memory),
        e => ScriptError::Sandbox(e.to_string()),
    })?;
    lua.globals().set("obj", obj).map_err(sandbox)?;
    let function = lua
        .load(script)
        .set_name("=health.lua")
        .into_function()
        .map_err(|e| ScriptError::Lua(lua_message(&e)))?;

    let used = lua.used_memory();
    lua.set_memory_limit(used.saturating_add(limits.memory))
        .map_err(sandbox)?;
    let started = Instant::now();
    let (budget, time) = (limits.instructions, limits.time);
    let hook_stop = Rc::clone(&stop);
    let counted = Cell::new(0u64);
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(CHECK_EVERY),
        move |_, _| {
            counted.set(counted.get() + u64::from(CHECK_EVERY));
            if counted.get() > budget {
                hook_stop.set(Stop::Instructions);
            } else if started.elapsed() > time {
                hook_stop.set(Stop::Time);
            }
            match hook_stop.get() {
                Stop::Running => Ok(VmState::Continue),
                _ => Err(mlua::Error::runtime("stopped by Plumb")),
            }
        },
    )
    .map_err(sandbox)?;
    let result = function.call::<LuaValue>(());
    lua.remove_hook();
    match stop.get() {
        Stop::Instructions => return Err(ScriptError::Instructions(budget)),
        Stop::Time => return Err(ScriptError::Time(time)),
        Stop::Running => {}
    }
    let value = result.map_err(|e| match e {
        mlua::Error::MemoryError(_) => ScriptError::Memory(limits.memory),
        e => ScriptError::Lua(lua_message(&e)),
    })?;
    from_lua(&value)
}

/// The message of a Lua error, without mlua's wrapping or the traceback
/// (Argo CD shows the message alone too).
fn lua_message(error: &mlua::Error) -> String {
    let text = match error {
        mlua::Error::CallbackError { cause, .. } => return lua_message(cause),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        other => other.to_string(),
    };
    let text = text
        .split_once("\nstack traceback:")
        .map_or(text.as_str(), |(m, _)| m);
    text.trim_end().to_string()
}

/// The object as a Lua table: `null` is `nil` (a key with a `null` value is
/// absent), numbers are Lua numbers, arrays count from 1.
fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => LuaValue::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(table)
        }
        Value::Object(map) => {
            let table = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                table.raw_set(k.as_str(), to_lua(lua, v)?)?;
            }
            LuaValue::Table(table)
        }
    })
}

/// A value's type as Lua 5.1 names it (mlua tells integers apart).
fn type_name(value: &LuaValue) -> &'static str {
    match value {
        LuaValue::Integer(_) | LuaValue::Number(_) => "number",
        other => other.type_name(),
    }
}

/// What the script returned, read as Argo CD reads it: nothing or an empty
/// table is no health; a status that is not one of Argo CD's is Unknown
/// "Lua returned an invalid health status".
fn from_lua(value: &LuaValue) -> Result<Option<Health>, ScriptError> {
    let table = match value {
        LuaValue::Nil => return Ok(None),
        LuaValue::Table(table) => table,
        other => return Err(ScriptError::NotATable(type_name(other).to_string())),
    };
    if table.pairs::<LuaValue, LuaValue>().next().is_none() {
        return Ok(None);
    }
    let text = |field: &str| -> Result<Option<String>, ScriptError> {
        match table.raw_get::<LuaValue>(field) {
            Ok(LuaValue::Nil) => Ok(None),
            Ok(LuaValue::String(s)) => Ok(Some(s.to_string_lossy())),
            Ok(other) => Err(ScriptError::BadField(format!(
                "the returned {field} is a {}, not a string",
                type_name(&other)
            ))),
            Err(e) => Err(ScriptError::BadField(e.to_string())),
        }
    };
    let status = text("status")?;
    let message = text("message")?.unwrap_or_default();
    let status =
        status.and_then(|s| serde_json::from_value::<HealthStatusCode>(Value::String(s)).ok());
    Ok(Some(match status {
        Some(status) => Health::new(status, message),
        None => Health::new(
            HealthStatusCode::Unknown,
            "Lua returned an invalid health status",
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "n", "deletionTimestamp": null}, "spec": {"size": 3}, "status": status})
    }

    /// A script in the style of Argo CD users': the Ready condition decides.
    const READY_CONDITION: &str = r#"
hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the widget"
return hs
"#;

    fn run(script: &str, object: &Value) -> Result<Option<Health>, ScriptError> {
        health(script, false, object, &Limits::default())
    }

    #[test]
    fn a_script_says_healthy_degraded_or_progressing() {
        let ready = |status: &str, message: &str| {
            widget(json!({"conditions": [{"type": "Ready", "status": status, "message": message}]}))
        };
        assert_eq!(
            run(READY_CONDITION, &ready("True", "all good")),
            Ok(Some(Health::new(HealthStatusCode::Healthy, "all good")))
        );
        assert_eq!(
            run(READY_CONDITION, &ready("False", "size 3 is too big")),
            Ok(Some(Health::new(
                HealthStatusCode::Degraded,
                "size 3 is too big"
            )))
        );
        assert_eq!(
            run(READY_CONDITION, &widget(json!(null))),
            Ok(Some(Health::new(
                HealthStatusCode::Progressing,
                "Waiting for the widget"
            )))
        );
    }

    #[test]
    fn nulls_are_nil_and_numbers_are_numbers() {
        let script = r#"
if obj.metadata.deletionTimestamp ~= nil then return {status = "Degraded"} end
if obj.spec.size + 1 ~= 4 then return {status = "Degraded"} end
return {status = "Healthy", message = string.format("%d of %d", #obj.status.items, obj.spec.size)}
"#;
        assert_eq!(
            run(script, &widget(json!({"items": ["a", "b"]}))),
            Ok(Some(Health::new(HealthStatusCode::Healthy, "2 of 3")))
        );
    }

    #[test]
    fn a_script_that_errors_says_where() {
        let error = run("return {status = obj.status.phase}", &widget(json!(null)));
        assert_eq!(
            error,
            Err(ScriptError::Lua(
                "health.lua:1: attempt to index field 'status' (a nil value)".into()
            ))
        );
        let error = run("error('no widgets here')", &widget(json!({})));
        assert_eq!(
            error,
            Err(ScriptError::Lua("health.lua:1: no widgets here".into()))
        );
        let error = run("return {status = ", &widget(json!({})));
        assert!(
            matches!(&error, Err(ScriptError::Lua(m)) if m.starts_with("health.lua:1:")),
            "{error:?}"
        );
        assert_eq!(check("return {status = 'Healthy'}"), Ok(()));
        assert!(matches!(check("if then"), Err(ScriptError::Lua(_))));
    }

    #[test]
    fn a_script_that_loops_forever_is_stopped() {
        let limits = Limits {
            instructions: 1_000_000,
            ..Limits::default()
        };
        let looping = "while true do end";
        assert_eq!(
            health(looping, false, &widget(json!({})), &limits),
            Err(ScriptError::Instructions(1_000_000))
        );
        // pcall does not catch the stop.
        let stubborn = "while true do pcall(function() while true do end end) end";
        assert_eq!(
            health(stubborn, false, &widget(json!({})), &limits),
            Err(ScriptError::Instructions(1_000_000))
        );
    }

    #[test]
    fn a_script_that_eats_memory_is_stopped() {
        let limits = Limits {
            memory: 1 << 20,
            ..Limits::default()
        };
        let greedy = "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end";
        assert_eq!(
            health(greedy, false, &widget(json!({})), &limits),
            Err(ScriptError::Memory(1 << 20))
        );
    }

    #[test]
    fn garbage_returned_is_not_a_health() {
        let object = widget(json!({}));
        assert_eq!(
            run("return 42", &object),
            Err(ScriptError::NotATable("number".into()))
        );
        assert_eq!(
            run("return {status = 'Fine'}", &object),
            Ok(Some(Health::new(
                HealthStatusCode::Unknown,
                "Lua returned an invalid health status"
            )))
        );
        assert_eq!(
            run("return {message = 'no status'}", &object),
            Ok(Some(Health::new(
                HealthStatusCode::Unknown,
                "Lua returned an invalid health status"
            )))
        );
        assert_eq!(
            run("return {status = {}}", &object),
            Err(ScriptError::BadField(
                "the returned status is a table, not a string".into()
            ))
        );
        assert_eq!(run("return nil", &object), Ok(None));
        assert_eq!(run("return {}", &object), Ok(None));
        assert_eq!(run("hs = {}", &object), Ok(None));
    }

    #[test]
    fn the_sandbox_has_no_files_processes_or_bytecode() {
        let object = widget(json!({}));
        for script in [
            "os.execute('true')",
            "os.exit(1)",
            "os.getenv('HOME')",
            "io.open('/etc/passwd')",
            "dofile('/etc/passwd')",
            "loadstring('return 1')",
            "debug.sethook()",
            "coroutine.create(print)",
            "require('io')",
            "require('socket')",
        ] {
            assert!(
                matches!(run(script, &object), Err(ScriptError::Lua(_))),
                "{script} ran"
            );
        }
        // Argo CD's safe os, and require of a standard library, work.
        let script = "local os = require('os') if os.time() > 0 and os.date('!%Y') ~= '' then return {status = 'Healthy'} end";
        assert_eq!(
            run(script, &object),
            Ok(Some(Health::new(HealthStatusCode::Healthy, "")))
        );
    }

    #[test]
    fn use_open_libs_adds_io_but_never_popen() {
        let object = widget(json!({}));
        let script = "if io ~= nil and io.popen == nil then return {status = 'Healthy'} end return {status = 'Degraded'}";
        assert_eq!(
            health(script, true, &object, &Limits::default()),
            Ok(Some(Health::new(HealthStatusCode::Healthy, "")))
        );
        assert_eq!(
            health(script, false, &object, &Limits::default()),
            Ok(Some(Health::new(HealthStatusCode::Degraded, "")))
        );
        assert!(matches!(
            health("os.execute('true')", true, &object, &Limits::default()),
            Err(ScriptError::Lua(_))
        ));
    }
}
