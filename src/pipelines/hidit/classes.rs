//! Class labels by number or by name: the model folder's own names (`class_names` in args.json),
//! or the 1000 ImageNet names for a 1000-class model that lists none.

/// ILSVRC-2012's classes in index order, one line each: the synset's WordNet lemmas separated
/// by ", " (as timm 1.0.11 lists them; written by tools/fixtures/make_hidit_fixtures.py).
const IMAGENET: &str = include_str!("../../../assets/imagenet-classes.txt");

/// How many suggestions an unknown name gets.
const SUGGESTIONS: usize = 5;

/// The names of a model's classes, each with its synonyms.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassNames {
    /// Per class, its names (first = the display name).
    names: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassError {
    #[error("--class {index}: this model has {count} classes, numbered 0 to {}", count - 1)]
    OutOfRange { index: usize, count: usize },

    #[error(
        "--class {given}: this model lists no class names, so give the class as a number from 0 \
         to {}",
        count - 1
    )]
    NoNames { given: String, count: usize },

    #[error("--class {given}: no class has this name{suggestions}")]
    Unknown { given: String, suggestions: String },

    #[error("--class {given}: several classes have this name: {matches}; give the number")]
    Ambiguous { given: String, matches: String },
}

impl ClassNames {
    /// The ImageNet-1k names.
    pub fn imagenet() -> Self {
        Self::from_lines(IMAGENET.lines())
    }

    /// One entry per class; each may hold synonyms separated by ", ".
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            names: lines
                .into_iter()
                .map(|line| line.split(", ").map(|n| n.trim().to_string()).collect())
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The display name of class `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index)?.first().map(String::as_str)
    }

    /// All names of class `index`, joined as listed.
    pub fn synonyms(&self, index: usize) -> Option<String> {
        Some(self.names.get(index)?.join(", "))
    }
}

/// The class `given` names among `count` classes: a number, or (case-insensitively) any of a
/// class's names in `names`.
pub fn resolve_class(
    given: &str,
    count: usize,
    names: Option<&ClassNames>,
) -> Result<usize, ClassError> {
    let given = given.trim();
    if let Ok(index) = given.parse::<usize>() {
        return if index < count {
            Ok(index)
        } else {
            Err(ClassError::OutOfRange { index, count })
        };
    }
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Err(ClassError::NoNames {
            given: given.to_string(),
            count,
        });
    };
    let wanted = given.to_lowercase();
    let listed = |i: usize| format!("{i} ({})", names.name(i).unwrap_or("?"));
    let exact: Vec<usize> = (0..names.len().min(count))
        .filter(|&i| {
            names.names[i].iter().any(|n| n.to_lowercase() == wanted)
                || names
                    .synonyms(i)
                    .is_some_and(|s| s.to_lowercase() == wanted)
        })
        .collect();
    match exact.as_slice() {
        [one] => Ok(*one),
        [] => {
            let near: Vec<String> = (0..names.len().min(count))
                .filter(|&i| {
                    names.names[i]
                        .iter()
                        .any(|n| n.to_lowercase().contains(&wanted))
                })
                .take(SUGGESTIONS)
                .map(listed)
                .collect();
            let suggestions = if near.is_empty() {
                format!("; give a number from 0 to {} or a listed name", count - 1)
            } else {
                format!("; did you mean {}?", near.join(", "))
            };
            Err(ClassError::Unknown {
                given: given.to_string(),
                suggestions,
            })
        }
        several => Err(ClassError::Ambiguous {
            given: given.to_string(),
            matches: several
                .iter()
                .map(|&i| listed(i))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The classes among `count` whose number starts with `query`, or any of whose names contains
/// it (case-insensitively), in class order: the window's class search. An empty query matches
/// every class.
pub fn search_classes(query: &str, count: usize, names: Option<&ClassNames>) -> Vec<usize> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return (0..count).collect();
    }
    (0..count)
        .filter(|&i| {
            i.to_string().starts_with(&query)
                || names
                    .and_then(|n| n.names.get(i))
                    .is_some_and(|names| names.iter().any(|n| n.to_lowercase().contains(&query)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_names_by_number_and_synonym() {
        let names = ClassNames::imagenet();
        assert_eq!(names.len(), 1000);
        assert_eq!(names.name(0), Some("tench"));
        assert_eq!(names.name(207), Some("golden retriever"));
        let resolve = |s: &str| resolve_class(s, 1000, Some(&names));
        assert_eq!(resolve("207"), Ok(207));
        assert_eq!(resolve("Golden Retriever"), Ok(207));
        assert_eq!(resolve("tabby cat"), Ok(281));
        assert_eq!(resolve("tabby, tabby cat"), Ok(281));
        assert_eq!(
            resolve("1000"),
            Err(ClassError::OutOfRange {
                index: 1000,
                count: 1000
            })
        );
        let crane = resolve("crane").unwrap_err().to_string();
        assert!(
            crane.contains("134 (crane)") && crane.contains("517 (crane)"),
            "{crane}"
        );
        let retriever = resolve("retriever").unwrap_err().to_string();
        assert!(
            retriever.contains("did you mean") && retriever.contains("207"),
            "{retriever}"
        );
    }

    #[test]
    fn search_finds_names_synonyms_and_numbers() {
        let names = ClassNames::imagenet();
        let found = search_classes("Retriever", 1000, Some(&names));
        assert!(found.contains(&207) && found.len() > 2, "{found:?}");
        assert_eq!(search_classes("tabby cat", 1000, Some(&names)), vec![281]);
        assert_eq!(search_classes("", 3, None), vec![0, 1, 2]);
        assert_eq!(search_classes("1", 12, None), vec![1, 10, 11]);
        let own = ClassNames::from_lines(["red circle", "blue square", "red star"]);
        assert_eq!(search_classes(" RED ", 3, Some(&own)), vec![0, 2]);
        assert_eq!(search_classes("purple", 3, Some(&own)), Vec::<usize>::new());
    }

    #[test]
    fn models_without_names_take_numbers() {
        assert_eq!(resolve_class(" 3 ", 10, None), Ok(3));
        let e = resolve_class("cat", 10, None).unwrap_err().to_string();
        assert!(e.contains("0 to 9"), "{e}");
        let own = ClassNames::from_lines(["red circle", "blue square"]);
        assert_eq!(resolve_class("Blue Square", 2, Some(&own)), Ok(1));
    }
}
