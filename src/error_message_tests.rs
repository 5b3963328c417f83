//! Every error reaches the user as `{:#}` (the CLI's `error: …` line, the window's messages), which
//! prints the message and then each chained source. A message that also prints its source
//! therefore says the cause twice ("…: Is a directory (os error 21): Is a directory (os error
//! 21)"). The house rule (see `hub::error`): a cause shown in the message is a plain field, not a
//! `#[source]`, a `#[from]`, or a field named `source` (which thiserror chains by its name alone).
//! This test reads every `#[error(…)]` in `src` and fails on a variant that breaks it.

use std::path::Path;

use crate::source_scan::rust_files;

/// The index just past the bracket that closes the one at `open`, skipping string literals
/// (messages hold brackets of their own, and escaped quotes).
fn matching_close(text: &[u8], open: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut i) = (0usize, false, open);
    while i < text.len() {
        let c = text[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The variant after an `#[error(…)]` attribute ending at `from`: its name and its fields'
/// text (`(…)` or `{…}`), or None for a unit variant.
fn variant_after(text: &str, from: usize) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let mut i = from;
    loop {
        let rest = text[i..].trim_start();
        i = text.len() - rest.len();
        if rest.starts_with("//") {
            i += rest.find('\n')?;
        } else if rest.starts_with("#[") {
            i = matching_close(bytes, i + 1)?;
        } else {
            break;
        }
    }
    let name_len = text[i..].find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    let name = &text[i..i + name_len];
    let after = text[i + name_len..].trim_start();
    let open = text.len() - after.len();
    if !after.starts_with(['(', '{']) {
        return None;
    }
    let close = matching_close(bytes, open)?;
    Some((name, &text[open..close]))
}

/// The fields thiserror chains as the error's source: one marked `#[source]` or `#[from]`, or
/// one named `source`. A tuple field is named by its index.
fn chained_fields(fields: &str) -> Vec<String> {
    let inner = &fields[1..fields.len() - 1];
    let mut chained = Vec::new();
    for (index, field) in inner.split(',').enumerate() {
        let marked = field.contains("#[source]") || field.contains("#[from]");
        let name = if fields.starts_with('(') {
            index.to_string()
        } else {
            let Some((before_colon, _)) = field.split_once(':') else {
                continue;
            };
            // The last word before the colon: attributes before it are words of their own.
            before_colon
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_owned()
        };
        if marked || name == "source" {
            chained.push(name);
        }
    }
    chained
}

/// `file:line: Variant` for every variant whose message prints a field it also chains.
fn causes_said_twice(path: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("#[error(") {
        let start = at + offset;
        let Some(end) = matching_close(text.as_bytes(), start + 1) else {
            break;
        };
        at = end;
        let message = &text[start..end];
        // `#[error(transparent)]` forwards the inner error's message and chain as they are.
        if message == "#[error(transparent)]" {
            continue;
        }
        let Some((name, fields)) = variant_after(text, end) else {
            continue;
        };
        let printed = chained_fields(fields).into_iter().any(|field| {
            message.contains(&format!("{{{field}}}")) || message.contains(&format!("{{{field}:"))
        });
        if printed {
            let line = text[..start].matches('\n').count() + 1;
            found.push(format!("{}:{line}: {name}", path.display()));
        }
    }
    found
}

#[test]
fn no_error_message_prints_a_cause_it_also_chains() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let this_file = Path::new(file!()).file_name();
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| path.file_name() != this_file)
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            causes_said_twice(path, &text)
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these errors print their cause in the message and chain it too, so `{{:#}}` says it \
         twice; make the cause a plain field named `cause` (see hub::error):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_finds_each_way_of_chaining_a_printed_cause() {
    let offending = r#"
        enum E {
            #[error("could not read {path}: {source}")]
            Named { path: PathBuf, source: std::io::Error },
            #[error("{path}: {cause}")]
            Marked {
                path: PathBuf,
                #[source]
                cause: std::io::Error,
            },
            #[error("the database failed: {0}")]
            // a comment between the message and the variant
            From(#[from] rusqlite::Error),
            #[error("the mask is transparent: {source}")]
            Mask { source: std::io::Error },
        }
    "#;
    let found = causes_said_twice(Path::new("e.rs"), offending);
    assert_eq!(
        found,
        [
            "e.rs:3: Named",
            "e.rs:5: Marked",
            "e.rs:11: From",
            "e.rs:14: Mask"
        ]
    );

    let fine = r#"
        enum E {
            #[error("could not read {path} (see the log): {cause}")]
            Plain { path: PathBuf, cause: std::io::Error },
            #[error("the engine failed")]
            Chained(#[from] EngineError),
            #[error(transparent)]
            Wrapped(#[from] WriteError),
            #[error("cancelled")]
            Cancelled,
        }
    "#;
    assert_eq!(
        causes_said_twice(Path::new("e.rs"), fine),
        Vec::<String>::new()
    );
}

/// The case a user met: a folder given as --conversation printed the OS error twice.
#[test]
fn a_conversation_folder_is_named_once_with_its_cause() {
    let dir = std::env::temp_dir();
    let Err(error) = crate::agent::Conversation::load(&dir) else {
        panic!("reading a folder as a conversation should fail");
    };
    let text = format!("{:#}", anyhow::Error::from(error));
    let cause = std::fs::read(&dir).map(|_| ()).unwrap_err().to_string();
    assert_eq!(text.matches(&cause).count(), 1, "{text}");
}
