//! The gallery's selection and keyboard focus, as file managers keep them: a click selects one,
//! Ctrl-click adds or removes one, Shift-click selects the run from the anchor; arrows move the
//! focus. Pure, over the ids shown in order, so it is tested without a window.

use std::collections::BTreeSet;

/// How a click was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickKind {
    Plain,
    /// Ctrl (Cmd on macOS): toggle one.
    Toggle,
    /// Shift: the range from the anchor.
    Range,
}

impl ClickKind {
    pub fn from_modifiers(modifiers: egui::Modifiers) -> Self {
        if modifiers.shift {
            Self::Range
        } else if modifiers.command {
            Self::Toggle
        } else {
            Self::Plain
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    selected: BTreeSet<i64>,
    /// Where a Shift-click's range starts.
    anchor: Option<i64>,
    /// The tile the keyboard acts on.
    focus: Option<i64>,
}

impl Selection {
    pub fn ids(&self) -> Vec<i64> {
        // Newest first, as the grid shows them.
        self.selected.iter().rev().copied().collect()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.selected.contains(&id)
    }

    pub fn focus(&self) -> Option<i64> {
        self.focus
    }

    pub fn is_empty(&self) -> bool {
        self.selected.is_empty()
    }

    /// A click on `id`; `shown` is the grid's order.
    pub fn click(&mut self, id: i64, kind: ClickKind, shown: &[i64]) {
        match kind {
            ClickKind::Plain => {
                self.selected = BTreeSet::from([id]);
                self.anchor = Some(id);
            }
            ClickKind::Toggle => {
                if !self.selected.remove(&id) {
                    self.selected.insert(id);
                }
                self.anchor = Some(id);
            }
            ClickKind::Range => {
                let at = |x: i64| shown.iter().position(|&s| s == x);
                match (self.anchor.and_then(at), at(id)) {
                    (Some(a), Some(b)) => {
                        let (from, to) = (a.min(b), a.max(b));
                        self.selected = shown[from..=to].iter().copied().collect();
                    }
                    // No anchor on screen: a plain click.
                    _ => return self.click(id, ClickKind::Plain, shown),
                }
            }
        }
        self.focus = Some(id);
    }

    /// Space: the focused tile in or out of the selection.
    pub fn toggle_focused(&mut self) {
        if let Some(id) = self.focus {
            self.click(id, ClickKind::Toggle, &[]);
        }
    }

    /// Moves the focus `by` places in `shown` (a row is `columns` places), stopping at the ends.
    /// With nothing focused the first tile takes the focus.
    pub fn move_focus(&mut self, by: isize, shown: &[i64]) {
        let Some(last) = shown.len().checked_sub(1) else {
            self.focus = None;
            return;
        };
        let next = match self.focus.and_then(|f| shown.iter().position(|&s| s == f)) {
            Some(at) => at.saturating_add_signed(by).min(last),
            None => 0,
        };
        self.focus = Some(shown[next]);
    }

    /// Keeps only what is still shown (after a filter change or a delete).
    pub fn retain_shown(&mut self, shown: &[i64]) {
        self.selected.retain(|id| shown.contains(id));
        if self.focus.is_some_and(|f| !shown.contains(&f)) {
            self.focus = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: [i64; 5] = [9, 7, 5, 3, 1];

    #[test]
    fn clicks_select_one_toggle_and_range() {
        let mut s = Selection::default();
        s.click(7, ClickKind::Plain, &SHOWN);
        assert_eq!(s.ids(), vec![7]);
        s.click(3, ClickKind::Toggle, &SHOWN);
        assert_eq!(s.ids(), vec![7, 3]);
        s.click(7, ClickKind::Toggle, &SHOWN);
        assert_eq!(s.ids(), vec![3]);
        s.click(9, ClickKind::Range, &SHOWN);
        assert_eq!(s.ids(), vec![9, 7], "from the last clicked (7) up to 9");
        s.click(3, ClickKind::Plain, &SHOWN);
        s.click(9, ClickKind::Range, &SHOWN);
        assert_eq!(s.ids(), vec![9, 7, 5, 3], "from the anchor 3 up to 9");
        s.click(5, ClickKind::Range, &SHOWN);
        assert_eq!(s.ids(), vec![5, 3], "the anchor stays at 3");
        assert_eq!(s.focus(), Some(5));
    }

    #[test]
    fn a_range_without_an_anchor_on_screen_is_a_plain_click() {
        let mut s = Selection::default();
        s.click(2, ClickKind::Plain, &[2]);
        s.click(5, ClickKind::Range, &SHOWN);
        assert_eq!(s.ids(), vec![5]);
    }

    #[test]
    fn the_focus_moves_and_stops_at_the_ends() {
        let mut s = Selection::default();
        s.move_focus(1, &SHOWN);
        assert_eq!(s.focus(), Some(9), "nothing focused: the first tile");
        s.move_focus(3, &SHOWN);
        assert_eq!(s.focus(), Some(3));
        s.move_focus(3, &SHOWN);
        assert_eq!(s.focus(), Some(1));
        s.move_focus(-10, &SHOWN);
        assert_eq!(s.focus(), Some(9));
        s.toggle_focused();
        assert_eq!(s.ids(), vec![9]);
        s.move_focus(1, &[]);
        assert_eq!(s.focus(), None);
    }

    #[test]
    fn hidden_tiles_leave_the_selection() {
        let mut s = Selection::default();
        s.click(9, ClickKind::Plain, &SHOWN);
        s.click(5, ClickKind::Toggle, &SHOWN);
        s.retain_shown(&[5, 3]);
        assert_eq!(s.ids(), vec![5]);
        assert_eq!(s.focus(), Some(5));
        s.retain_shown(&[3]);
        assert!(s.is_empty());
        assert_eq!(s.focus(), None);
    }
}
