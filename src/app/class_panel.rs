//! The class controls: a Hi-DiT model draws one of the classes it was trained on. A class
//! picker with search, the sampler (ODE or SDE, steps) and classifier-free guidance with its
//! interval.

use std::path::PathBuf;

use egui::{DragValue, TextEdit, Ui};

use super::actions::Action;
use super::class_model::{ClassModel, ClassModelState};
use super::widgets::{submit_button, value_row};
use crate::models::hidit::Mode as Sampler;
use crate::pipelines::hidit::{HiditRecord, MAX_STEPS, search_classes};

/// At most this many classes are listed at once (ImageNet has 1000): the search narrows them.
const LISTED: usize = 100;

pub struct ClassPanel {
    /// What is typed in "Search classes".
    pub search: String,
    /// The chosen class's label; `None` until one is picked.
    pub class: Option<usize>,
    pub steps: usize,
    pub sampler: Sampler,
    pub cfg_scale: f64,
    /// Guidance applies at steps whose time t (1 = noise, 0 = image) lies in [low, high].
    pub guidance_low: f64,
    pub guidance_high: f64,
    /// The model whose defaults the controls were last set to (they are set again when the
    /// model changes).
    defaults_for: Option<PathBuf>,
    /// The values came from a result ("reuse settings"): the model's defaults must not
    /// replace them.
    values_from_record: bool,
}

impl Default for ClassPanel {
    /// The `hidit` command's defaults: generate.py's 50 steps and guidance 1.5, over the whole
    /// path (Hi-DiT's interval).
    fn default() -> Self {
        Self {
            search: String::new(),
            class: None,
            steps: 50,
            sampler: Sampler::Ode,
            cfg_scale: 1.5,
            guidance_low: 0.0,
            guidance_high: 1.0,
            defaults_for: None,
            values_from_record: false,
        }
    }
}

impl ClassPanel {
    /// Takes over a finished image's settings ("reuse settings", or a dropped PNG); the caller
    /// fixes the seed.
    pub(crate) fn apply_record(&mut self, record: &HiditRecord) {
        let s = &record.settings;
        self.class = Some(s.class);
        self.search.clear();
        self.steps = s.steps;
        self.sampler = s.mode;
        self.cfg_scale = s.cfg_scale;
        self.guidance_low = s.guidance_low;
        self.guidance_high = s.guidance_high;
        self.values_from_record = true;
    }

    /// Sets the controls to `model`'s own defaults when it is another model than last time.
    fn follow_model(&mut self, model: &ClassModel) {
        if self.defaults_for.as_ref() == Some(&model.files.model) {
            self.values_from_record = false;
            return;
        }
        self.defaults_for = Some(model.files.model.clone());
        if std::mem::take(&mut self.values_from_record) {
            return;
        }
        if let Some(d) = model.defaults {
            self.sampler = d.mode;
            self.steps = d.num_steps;
            self.cfg_scale = d.cfg_scale;
            self.guidance_low = d.guidance_low;
            self.guidance_high = d.guidance_high;
        }
    }

    /// Draws the controls for `model`; `seed_ui` draws the seed row. Asks to generate when
    /// Generate is clicked.
    pub(crate) fn ui(
        &mut self,
        ui: &mut Ui,
        model: &ClassModelState,
        can_generate: bool,
        seed_ui: impl FnOnce(&mut Ui),
    ) -> Option<Action> {
        let mut action = None;
        match model {
            ClassModelState::Ready(model) => {
                self.follow_model(model);
                self.picker_ui(ui, model);
            }
            ClassModelState::NotSet => {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "No Hi-DiT model is set: open Models and choose an experiment folder \
                     (args.json and checkpoints/) for class mode.",
                );
                if ui.button("Open Models").clicked() {
                    action = Some(Action::ShowModels);
                }
            }
            ClassModelState::Problem(problem) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The Hi-DiT model cannot be used: {problem}"),
                );
                if ui.button("Open Models").clicked() {
                    action = Some(Action::ShowModels);
                }
            }
        }
        ui.add_space(6.0);
        self.sampler_ui(ui);
        seed_ui(ui);
        ui.add_space(8.0);
        if submit_button(ui, "Generate", can_generate) {
            action = Some(Action::GenerateClass);
        }
        action
    }

    fn picker_ui(&mut self, ui: &mut Ui, model: &ClassModel) {
        if self.class.is_some_and(|c| c >= model.count) {
            self.class = None;
        }
        ui.horizontal(|ui| {
            ui.label("Class");
            match self.class {
                Some(c) => ui.strong(format!("{} (label {c})", model.label(c))),
                None => ui.weak("none chosen: search and click one"),
            };
        });
        let label = ui.label("Search classes");
        ui.add(
            TextEdit::singleline(&mut self.search)
                .hint_text("a name or a number")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        let found = search_classes(&self.search, model.count, model.names.as_ref());
        egui::ScrollArea::vertical()
            .id_salt("classes")
            .max_height(180.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for &i in found.iter().take(LISTED) {
                    ui.horizontal(|ui| {
                        if ui
                            .selectable_label(self.class == Some(i), model.label(i))
                            .clicked()
                        {
                            self.class = Some(i);
                        }
                        if model.names.is_some() {
                            ui.weak(format!("#{i}"));
                        }
                    });
                }
            });
        match found.len() {
            0 => {
                ui.weak(format!(
                    "No class matches; this model has {} classes, numbered 0 to {}.",
                    model.count,
                    model.count.saturating_sub(1)
                ));
            }
            n if n > LISTED => {
                ui.weak(format!(
                    "{} more: type more of the name to find them.",
                    n - LISTED
                ));
            }
            _ => {}
        }
        if !model.null_class {
            ui.weak("This model was trained without the null class: keep CFG scale at 1.");
        }
    }

    fn sampler_ui(&mut self, ui: &mut Ui) {
        egui::Grid::new("class-sampler")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Sampler");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.sampler, Sampler::Ode, "ODE")
                        .on_hover_text("Euler on the probability-flow ODE: deterministic");
                    ui.selectable_value(&mut self.sampler, Sampler::Sde, "SDE")
                        .on_hover_text(
                            "Euler–Maruyama with a last noise-free step (Hi-DiT's choice)",
                        );
                });
                ui.end_row();
                value_row(
                    ui,
                    "Steps",
                    DragValue::new(&mut self.steps).range(1..=MAX_STEPS),
                );
                let cfg = DragValue::new(&mut self.cfg_scale)
                    .range(1.0..=20.0)
                    .speed(0.05)
                    .max_decimals(2);
                value_row(ui, "CFG scale", cfg)
                    .on_hover_text("Classifier-free guidance; 1 turns it off");
                let interval = "Guidance applies at steps whose time t lies between these two \
                                (t runs from 1, noise, to 0, the image)";
                for (label, bound) in [
                    ("Guidance from", &mut self.guidance_low),
                    ("Guidance to", &mut self.guidance_high),
                ] {
                    let value = DragValue::new(bound)
                        .range(0.0..=1.0)
                        .speed(0.01)
                        .max_decimals(3);
                    value_row(ui, label, value).on_hover_text(interval);
                }
            });
    }
}
