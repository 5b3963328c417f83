//! Memory sizes as people write them (`24GiB`, `24GB`, `16000MiB`) and as the planner prints
//! them: GB of 10⁹ bytes, the unit Hugging Face gives file sizes in.

/// Why a size did not parse. Messages complete "--flag VALUE: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("is empty; give a size such as 24GiB, 24GB or 16000MiB")]
    Empty,
    #[error("`{0}` has no unit; write it as 24GB (10⁹ bytes) or 24GiB (2³⁰ bytes)")]
    NoUnit(String),
    #[error("`{0}` does not start with a number; give a size such as 24GiB, 24GB or 16000MiB")]
    NoNumber(String),
    #[error("`{given}` has an unknown unit `{unit}`; use B, kB, KiB, MB, MiB, GB, GiB, TB or TiB")]
    Unit { given: String, unit: String },
    #[error("`{0}` is not a size above zero")]
    NotPositive(String),
    #[error("`{0}` is more memory than any device has")]
    TooLarge(String),
}

const UNITS: [(&str, f64); 9] = [
    ("b", 1.0),
    ("kb", 1e3),
    ("kib", 1024.0),
    ("mb", 1e6),
    ("mib", 1_048_576.0),
    ("gb", 1e9),
    ("gib", 1_073_741_824.0),
    ("tb", 1e12),
    ("tib", 1_099_511_627_776.0),
];

/// Sizes above this (1 PB) are typing mistakes, and stay exact in an f64.
const LARGEST: f64 = 1e15;

/// Bytes of a size such as `24GiB`, `24 GB`, `23.5gb` or `16000MiB` (any case, optional space
/// before the unit). A unit is required: a bare `24` could mean bytes or gigabytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let given = text.trim();
    if given.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = given
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(given.len());
    let (number, unit) = given.split_at(split);
    let unit = unit.trim();
    let value: f64 = number
        .parse()
        .map_err(|_| SizeError::NoNumber(given.to_string()))?;
    if unit.is_empty() {
        return Err(SizeError::NoUnit(given.to_string()));
    }
    let scale = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, scale)| scale)
        .ok_or_else(|| SizeError::Unit {
            given: given.to_string(),
            unit: unit.to_string(),
        })?;
    let bytes = (value * scale).round();
    if bytes < 1.0 {
        return Err(SizeError::NotPositive(given.to_string()));
    }
    if bytes > LARGEST {
        return Err(SizeError::TooLarge(given.to_string()));
    }
    Ok(bytes as u64)
}

/// `18.7 GB`: one decimal, as the planner's reasons and tables give sizes.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!(parse_size("24GiB"), Ok(24 << 30));
        assert_eq!(parse_size("24GB"), Ok(24_000_000_000));
        assert_eq!(parse_size(" 24 gb "), Ok(24_000_000_000));
        assert_eq!(parse_size("16000MiB"), Ok(16000 << 20));
        assert_eq!(parse_size("23.5GB"), Ok(23_500_000_000));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("512B"), Ok(512));
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("24"), Err(SizeError::NoUnit("24".into())));
        assert_eq!(parse_size("GB"), Err(SizeError::NoNumber("GB".into())));
        assert_eq!(
            parse_size("1.2.3GB"),
            Err(SizeError::NoNumber("1.2.3GB".into()))
        );
        assert!(matches!(parse_size("24XB"), Err(SizeError::Unit { unit, .. }) if unit == "XB"));
        assert_eq!(parse_size("0GB"), Err(SizeError::NotPositive("0GB".into())));
        assert_eq!(parse_size("-4GB"), Err(SizeError::NoNumber("-4GB".into())));
        assert_eq!(
            parse_size("9999999TB"),
            Err(SizeError::TooLarge("9999999TB".into()))
        );
    }

    #[test]
    fn prints_decimal_gigabytes() {
        assert_eq!(gb(18_712_345_678), "18.7 GB");
        assert_eq!(gb(24 << 30), "25.8 GB");
    }
}
