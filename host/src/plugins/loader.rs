//! Open one library file and check it before anything in it is called.
//!
//! Order of checks: the file is a loadable library; it exports the entry
//! point of this host's ABI major (if not, whether it exports another
//! major's, to say so); the table's `abi_version` and `size`; the manifest
//! parses; its `api_version` is in [`SUPPORTED_API`]. Libraries are never
//! unloaded: a plugin's runtime threads and statics live as long as the
//! process.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use polysync_provider_api::abi::host::{LoadError, PluginLibrary};
use polysync_provider_api::abi::{ABI_VERSION, ENTRY_SYMBOL, EntryFn};

/// Provider API versions this host can talk to: any 1.x, because every
/// minor version only adds optional fields, enum values and operations.
pub const SUPPORTED_API: &str = ">=1.0.0, <2.0.0";

static SUPPORTED: LazyLock<semver::VersionReq> =
    LazyLock::new(|| semver::VersionReq::parse(SUPPORTED_API).expect("SUPPORTED_API is a valid requirement"));

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefuseReason {
    #[error("not a loadable library ({0}); remove it from the plugin directory")]
    NotALibrary(String),
    #[error(
        "no polysync plugin entry point (polysync_provider_v{ABI_VERSION}); it is not a polysync plugin, remove it from the plugin directory"
    )]
    NoEntryPoint,
    #[error(
        "it is a plugin for ABI {found}, this host speaks ABI {ABI_VERSION}; install the plugin build that matches this host"
    )]
    OtherAbi { found: u32 },
    #[error("refused: {0}")]
    Check(#[from] LoadError),
    #[error("another plugin named {name:?} was already loaded from {}; keep one of them", first.display())]
    Duplicate { name: String, first: PathBuf },
}

impl RefuseReason {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotALibrary(_) => "not_a_library",
            Self::NoEntryPoint => "no_entry_point",
            Self::OtherAbi { .. } => "abi_mismatch",
            Self::Check(e) => e.kind(),
            Self::Duplicate { .. } => "duplicate",
        }
    }
}

/// Check the file's headers before `dlopen` maps it: a truncated or foreign
/// file must be refused with a reason, not crash the process (a mapping
/// past the end of a file is a SIGBUS on first touch).
fn check_file(path: &Path) -> Result<(), RefuseReason> {
    use object::{Object, ObjectSection, ObjectSegment};
    let data = std::fs::read(path).map_err(|e| RefuseReason::NotALibrary(format!("cannot read it: {e}")))?;
    if !data.starts_with(b"\x7fELF") {
        return Err(RefuseReason::NotALibrary("not an ELF shared library".into()));
    }
    let file = object::File::parse(&*data)
        .map_err(|e| RefuseReason::NotALibrary(format!("a truncated or damaged ELF file ({e})")))?;
    if file.kind() != object::ObjectKind::Dynamic {
        return Err(RefuseReason::NotALibrary(format!(
            "an ELF file, but of kind {:?}, not a shared library",
            file.kind()
        )));
    }
    let native = if cfg!(target_arch = "x86_64") {
        object::Architecture::X86_64
    } else if cfg!(target_arch = "aarch64") {
        object::Architecture::Aarch64
    } else {
        file.architecture()
    };
    if file.architecture() != native {
        return Err(RefuseReason::NotALibrary(format!("built for {:?}, this host is {native:?}", file.architecture())));
    }
    let len = data.len() as u64;
    let beyond = |(offset, size): (u64, u64)| offset.checked_add(size).is_none_or(|end| end > len);
    if let Some(seg) = file.segments().find(|s| beyond(s.file_range())) {
        let (offset, size) = seg.file_range();
        return Err(RefuseReason::NotALibrary(format!(
            "truncated: a segment needs bytes {offset}..{} but the file has {len}",
            offset.saturating_add(size)
        )));
    }
    if let Some(sec) = file.sections().find(|s| s.file_range().is_some_and(beyond)) {
        return Err(RefuseReason::NotALibrary(format!(
            "truncated: section {} lies past the end of the file ({len} bytes)",
            sec.name().unwrap_or("?")
        )));
    }
    Ok(())
}

pub(super) fn load(path: &Path) -> Result<PluginLibrary, RefuseReason> {
    check_file(path)?;
    // SAFETY: loading a library runs its initializers. The plugin directory
    // is trusted configuration, like a PATH entry; nothing else is called
    // until the checks below pass.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| RefuseReason::NotALibrary(polysync_provider_api::error::chain(&e)))?;
    // SAFETY: the symbol's type is fixed by the ABI this name belongs to.
    let entry = match unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) } {
        Ok(entry) => *entry,
        Err(_) => {
            return Err(
                other_abi(&library).map_or(RefuseReason::NoEntryPoint, |found| RefuseReason::OtherAbi { found })
            );
        }
    };
    // SAFETY: `entry` is this ABI's entry point; it takes no arguments and
    // returns a pointer to a static table (or null, which `from_table` checks).
    let table = unsafe { entry() };
    // SAFETY: the library is leaked below, so the table lives forever.
    let checked = unsafe { PluginLibrary::from_table(table, &SUPPORTED) }?;
    std::mem::forget(library);
    Ok(checked)
}

/// The ABI major of another version's entry point, if the library has one.
fn other_abi(library: &libloading::Library) -> Option<u32> {
    (1..=16).filter(|v| *v != ABI_VERSION).find(|v| {
        let name = format!("polysync_provider_v{v}\0");
        // SAFETY: only the symbol's presence is checked; it is never called.
        unsafe { library.get::<*const ()>(name.as_bytes()) }.is_ok()
    })
}
