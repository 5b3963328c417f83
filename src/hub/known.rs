//! The repositories the studio knows how to use, with what to fetch from each and about how
//! much that is (the hub's listing gives the exact total once a download starts).

/// One downloadable model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownRepo {
    pub label: &'static str,
    pub repo: &'static str,
    /// `--include` patterns; empty for the whole repository.
    pub include: &'static [&'static str],
    /// About this many bytes (decimal GB as the hub shows them).
    pub approx_bytes: u64,
    /// The hub asks for a licence to be accepted before it serves the files.
    pub gated: bool,
    pub note: &'static str,
}

const GB: u64 = 1_000_000_000;

/// city96's GGUF repositories hold one file per quantisation; one is enough.
const Q8_0: &[&str] = &["*Q8_0.gguf"];
const Q4_K_M: &[&str] = &["*Q4_K_M.gguf"];

pub const KNOWN_REPOS: &[KnownRepo] = &[
    KnownRepo {
        label: "HiDream-I1-Full",
        repo: "HiDream-ai/HiDream-I1-Full",
        include: &[],
        approx_bytes: 47 * GB,
        gated: false,
        note: "50 steps, the best images; needs Llama-3.1-8B-Instruct too",
    },
    KnownRepo {
        label: "HiDream-I1-Dev",
        repo: "HiDream-ai/HiDream-I1-Dev",
        include: &[],
        approx_bytes: 47 * GB,
        gated: false,
        note: "28 steps, no guidance",
    },
    KnownRepo {
        label: "HiDream-I1-Fast",
        repo: "HiDream-ai/HiDream-I1-Fast",
        include: &[],
        approx_bytes: 47 * GB,
        gated: false,
        note: "16 steps, no guidance",
    },
    KnownRepo {
        label: "HiDream-E1-Full",
        repo: "HiDream-ai/HiDream-E1-Full",
        include: &[],
        approx_bytes: 35 * GB,
        gated: false,
        note: "editing by instruction; takes its encoders and VAE from I1-Full",
    },
    KnownRepo {
        label: "HiDream-E1.1",
        repo: "HiDream-ai/HiDream-E1-1",
        include: &[],
        approx_bytes: 35 * GB,
        gated: false,
        note: "editing at any size; takes its encoders and VAE from I1-Full",
    },
    KnownRepo {
        label: "Llama-3.1-8B-Instruct",
        repo: "meta-llama/Llama-3.1-8B-Instruct",
        // The safetensors and configs; `original/` repeats the weights in Meta's format.
        include: &["*.json", "*.safetensors"],
        approx_bytes: 16 * GB,
        gated: true,
        note: "the fourth text encoder of every HiDream model; gated: needs HF_TOKEN",
    },
    KnownRepo {
        label: "HiDream-I1-Full GGUF Q8_0",
        repo: "city96/HiDream-I1-Full-gguf",
        include: Q8_0,
        approx_bytes: 19 * GB,
        gated: false,
        note: "the Full transformer in 8 bits; use it with an I1-Full snapshot",
    },
    KnownRepo {
        label: "HiDream-I1-Full GGUF Q4_K_M",
        repo: "city96/HiDream-I1-Full-gguf",
        include: Q4_K_M,
        approx_bytes: 11 * GB,
        gated: false,
        note: "the Full transformer in about 4.8 bits, for 16 GB GPUs",
    },
    KnownRepo {
        label: "HiDream-I1-Dev GGUF Q8_0",
        repo: "city96/HiDream-I1-Dev-gguf",
        include: Q8_0,
        approx_bytes: 19 * GB,
        gated: false,
        note: "the Dev transformer in 8 bits; use it with an I1-Dev snapshot",
    },
    KnownRepo {
        label: "HiDream-I1-Dev GGUF Q4_K_M",
        repo: "city96/HiDream-I1-Dev-gguf",
        include: Q4_K_M,
        approx_bytes: 11 * GB,
        gated: false,
        note: "the Dev transformer in about 4.8 bits",
    },
    KnownRepo {
        label: "HiDream-I1-Fast GGUF Q8_0",
        repo: "city96/HiDream-I1-Fast-gguf",
        include: Q8_0,
        approx_bytes: 19 * GB,
        gated: false,
        note: "the Fast transformer in 8 bits; use it with an I1-Fast snapshot",
    },
    KnownRepo {
        label: "HiDream-I1-Fast GGUF Q4_K_M",
        repo: "city96/HiDream-I1-Fast-gguf",
        include: Q4_K_M,
        approx_bytes: 11 * GB,
        gated: false,
        note: "the Fast transformer in about 4.8 bits",
    },
];
