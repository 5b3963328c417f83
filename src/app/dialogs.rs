//! Native file dialogs, behind a trait so tests can answer them.

use std::path::PathBuf;

/// The questions the studio asks through the desktop's dialogs. `None` is "cancelled".
pub trait Dialogs {
    /// Where to export an image; `suggested` is a file name.
    fn save_image(&mut self, suggested: &str) -> Option<PathBuf>;
    /// A model folder.
    fn pick_folder(&mut self, title: &str) -> Option<PathBuf>;
    /// An image to edit.
    fn pick_image(&mut self) -> Option<PathBuf>;
    /// A GGUF transformer file.
    fn pick_gguf(&mut self, title: &str) -> Option<PathBuf>;
    /// A weights file in torch's or safetensors' format (a VAE, latent statistics).
    fn pick_weights(&mut self, title: &str) -> Option<PathBuf>;
}

/// The desktop's own dialogs (XDG portal on Linux, native elsewhere).
pub(crate) struct NativeDialogs;

impl Dialogs for NativeDialogs {
    fn save_image(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Export image")
            .set_file_name(suggested)
            .add_filter("PNG (keeps the settings)", &["png"])
            .add_filter("JPEG", &["jpg", "jpeg"])
            .add_filter("WebP", &["webp"])
            .save_file()
    }

    fn pick_folder(&mut self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title(title).pick_folder()
    }

    fn pick_image(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open an image to edit")
            .add_filter(
                "Images",
                &[
                    "png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "tga", "qoi",
                ],
            )
            .pick_file()
    }

    fn pick_gguf(&mut self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .add_filter("GGUF", &["gguf"])
            .pick_file()
    }

    fn pick_weights(&mut self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .add_filter("Weights", &["pt", "pth", "safetensors"])
            .pick_file()
    }
}

/// Answers dialogs from queues filled beforehand (for tests and scripted runs).
#[derive(Debug, Default, Clone)]
pub struct ScriptedDialogs {
    pub save_paths: Vec<PathBuf>,
    pub folders: Vec<PathBuf>,
    pub images: Vec<PathBuf>,
    pub gguf_files: Vec<PathBuf>,
    pub weight_files: Vec<PathBuf>,
}

impl Dialogs for ScriptedDialogs {
    fn save_image(&mut self, _: &str) -> Option<PathBuf> {
        (!self.save_paths.is_empty()).then(|| self.save_paths.remove(0))
    }

    fn pick_folder(&mut self, _: &str) -> Option<PathBuf> {
        (!self.folders.is_empty()).then(|| self.folders.remove(0))
    }

    fn pick_image(&mut self) -> Option<PathBuf> {
        (!self.images.is_empty()).then(|| self.images.remove(0))
    }

    fn pick_gguf(&mut self, _: &str) -> Option<PathBuf> {
        (!self.gguf_files.is_empty()).then(|| self.gguf_files.remove(0))
    }

    fn pick_weights(&mut self, _: &str) -> Option<PathBuf> {
        (!self.weight_files.is_empty()).then(|| self.weight_files.remove(0))
    }
}
