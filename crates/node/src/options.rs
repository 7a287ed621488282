//! Reading option objects: types are checked here, ranges by the core crates.

use napi::bindgen_prelude::{FromNapiValue, Object, Unknown, ValueType};

use crate::error::{from_napi, invalid_arg, Result};

fn option<'env>(options: &Object<'env>, name: &str, expected: ValueType) -> Result<Option<Unknown<'env>>> {
    let Some(value) = options.get::<Unknown>(name).map_err(from_napi)? else {
        return Ok(None);
    };
    match value.get_type().map_err(from_napi)? {
        ValueType::Undefined => Ok(None),
        found if found == expected => Ok(Some(value)),
        found => Err(invalid_arg(format!(
            "options.{name} must be a {}, got {}",
            format!("{expected}").to_lowercase(),
            format!("{found}").to_lowercase()
        ))),
    }
}

/// A non-negative integer that fits a u64 exactly.
pub fn whole_number(name: &str, n: f64) -> Result<u64> {
    // 2^53 - 1: past it a JS number no longer holds every integer.
    if !(0.0..=9_007_199_254_740_991.0).contains(&n) || n.fract() != 0.0 {
        return Err(invalid_arg(format!("{name} must be a non-negative integer, got {n}")));
    }
    Ok(n as u64)
}

pub fn integer_option(options: &Object, name: &str) -> Result<Option<u64>> {
    let Some(value) = option(options, name, ValueType::Number)? else {
        return Ok(None);
    };
    let n = f64::from_unknown(value).map_err(from_napi)?;
    whole_number(&format!("options.{name}"), n).map(Some)
}

pub fn bool_option(options: &Object, name: &str) -> Result<Option<bool>> {
    match option(options, name, ValueType::Boolean)? {
        Some(value) => bool::from_unknown(value).map(Some).map_err(from_napi),
        None => Ok(None),
    }
}

/// `{ [group]: cap }`.
pub fn gates_option(options: &Object, name: &str) -> Result<Vec<(String, u64)>> {
    let Some(value) = option(options, name, ValueType::Object)? else {
        return Ok(Vec::new());
    };
    let gates = Object::from_unknown(value).map_err(from_napi)?;
    let mut out = Vec::new();
    for group in Object::keys(&gates).map_err(from_napi)? {
        let cap: f64 = gates
            .get::<f64>(&group)
            .map_err(|_| invalid_arg(format!("options.{name}.{group} must be a number")))?
            .unwrap_or(f64::NAN);
        out.push((group.clone(), whole_number(&format!("options.{name}.{group}"), cap)?));
    }
    Ok(out)
}
