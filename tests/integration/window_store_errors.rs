//! What the window says when what it reads from disk is damaged: a dropped PNG's settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui_kittest::Harness;
use hidream_studio::app::{
    Mode, ModelFolders, ScriptedDialogs, StudioApp, StudioOptions, StudioPaths,
};
use hidream_studio::store::png_with_texts;

use super::history_store::image;

fn paths(root: &Path) -> StudioPaths {
    StudioPaths {
        config_dir: root.join("config"),
        data_dir: root.join("data"),
    }
}

fn window(paths: &StudioPaths) -> Harness<'static, StudioApp> {
    let paths = paths.clone();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            StudioApp::new(
                cc,
                StudioOptions {
                    paths,
                    cache: None,
                    dialogs: Box::new(ScriptedDialogs::default()),
                    bundled: ModelFolders::default(),
                },
            )
        });
    harness.run_ok();
    harness
}

fn shown_errors(harness: &Harness<'_, StudioApp>) -> Vec<String> {
    let messages = harness.state().messages();
    messages
        .iter()
        .filter(|m| m.is_error)
        .map(|m| m.text.clone())
        .collect()
}

#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_file(harness: &mut Harness<'_, StudioApp>, path: &Path) {
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(path.to_path_buf())));
    harness.run_ok();
}

#[test]
fn a_png_with_unreadable_settings_says_so_and_is_not_taken_for_editing() {
    let root = tempfile::tempdir().unwrap();
    let newer = root.path().join("from-a-newer-version.png");
    let png = png_with_texts(
        &image(5),
        "a prompt".into(),
        r#"{"written by": "a newer version"}"#.into(),
    )
    .unwrap();
    std::fs::write(&newer, png).unwrap();
    let mut harness = window(&paths(root.path()));
    drop_file(&mut harness, &newer);
    assert_eq!(
        harness.state().mode(),
        Mode::Generate,
        "nothing to edit was set"
    );
    let errors = shown_errors(&harness);
    assert!(
        errors.iter().any(|e| e.contains("from-a-newer-version.png")
            && e.contains("cannot be read, so nothing was loaded")
            && e.contains("newer version of HiDream Studio")),
        "{errors:?}"
    );

    // A PNG without studio settings is still the image to edit.
    let plain = root.path().join("plain.png");
    image(6).save(&plain).unwrap();
    drop_file(&mut harness, &plain);
    assert_eq!(harness.state().mode(), Mode::Edit);
}
