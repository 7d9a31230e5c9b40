//! Stage 5: write the rendered tree. One of the two stages that touch the filesystem (the
//! other is `load`). OUT is replaced as a whole: files are staged in a sibling directory
//! and swapped in with one atomic rename, so a failed or killed render leaves the previous
//! OUT exactly as it was. mcwan owns the top-level entries of OUT it writes (each cluster's
//! directory, `sdwan/`, `SUMMARY.md` and the provenance); other entries are carried over
//! untouched.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::check::names::is_dns1123_label;
use crate::conventions::FABRIC_DIRECTORY;
use crate::error::Error;
use crate::render::OutputFile;

/// The file in OUT that records what mcwan wrote there.
pub const PROVENANCE: &str = "mcwan-provenance.json";

/// The largest file of OUT mcwan reads back (`check`, `diff`, `verify`): Kubernetes
/// refuses objects over 1.5 MiB, so nothing mcwan wrote comes near it.
pub const MAX_OUT_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// What `PROVENANCE` holds. `owns` are the top-level entries of OUT mcwan wrote, itself
/// excluded: files, and directories whose every file is mcwan's. Listing entries rather
/// than files keeps the record, and what reads it, the size of the clusterset's topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub generator: String,
    pub version: String,
    pub input_digest: String,
    pub owns: BTreeSet<String>,
    /// What the declarations intend, for `mcwan verify OUT` (see `verify::intent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<crate::verify::intent::Intent>,
}

/// The part of a provenance `verify` reads.
#[derive(Deserialize)]
struct WithIntent {
    intent: Option<crate::verify::intent::Intent>,
}

/// The intent a render recorded in OUT's provenance, if any.
///
/// # Errors
/// When the provenance cannot be read or parsed.
pub fn recorded_intent(out: &Path) -> Result<Option<crate::verify::intent::Intent>, Error> {
    let path = out.join(PROVENANCE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let recorded: WithIntent = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Usage(format!(
            "`{}` is not a provenance mcwan can read: {e}",
            path.display()
        ))
    })?;
    Ok(recorded.intent)
}

/// A provenance as read back: earlier versions listed every file they wrote in `files`
/// and owned just those.
#[derive(Deserialize)]
struct Recorded {
    generator: String,
    owns: Option<BTreeSet<String>>,
    files: Option<BTreeSet<String>>,
}

/// What a previous render owns in OUT.
struct Owned {
    /// Top-level entries.
    entries: BTreeSet<String>,
    /// For a provenance that lists files: the files, since only those are mcwan's.
    files: Option<BTreeSet<String>>,
}

impl Recorded {
    /// # Errors
    /// The reason this is not mcwan's provenance.
    fn owned(self) -> Result<Owned, String> {
        if self.generator != "mcwan" {
            return Err(format!("it names `{}` as its generator", self.generator));
        }
        let entries: BTreeSet<String> = match (self.owns, &self.files) {
            (Some(owns), None) => owns,
            (None, Some(files)) => files
                .iter()
                .filter_map(|f| f.split('/').next())
                .map(str::to_string)
                .collect(),
            _ => return Err("it needs either `owns` or `files`".into()),
        };
        match entries
            .iter()
            .find(|e| e.contains('/') || checked_relative(e).is_err())
        {
            Some(bad) => Err(format!("`{bad}` is not an entry of OUT")),
            None => Ok(Owned {
                entries,
                files: self.files,
            }),
        }
    }
}

impl Provenance {
    #[must_use]
    pub fn file(&self) -> OutputFile {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        OutputFile {
            path: PROVENANCE.to_string(),
            bytes: text.into_bytes(),
        }
    }
}

/// A previous render, read-only, for `check` and `diff`.
pub struct Existing {
    root: PathBuf,
    /// The top-level entries of OUT the previous render owned, provenance included.
    owned: BTreeSet<String>,
}

impl Existing {
    /// Opens OUT, which may not exist yet, for a render that would write the top-level
    /// entries `owns`.
    ///
    /// # Errors
    /// When OUT exists but mcwan did not create it, when the render would take what mcwan
    /// did not write (as `render` would refuse to), or on I/O errors.
    pub fn open(out: &Path, owns: &BTreeSet<String>) -> Result<Self, Error> {
        let mut owned = take_over(out, owns)?.unwrap_or_default();
        if out.join(PROVENANCE).is_file() {
            owned.insert(PROVENANCE.to_string());
        }
        Ok(Existing {
            root: out.to_path_buf(),
            owned,
        })
    }

    /// The top-level entries the previous render wrote, provenance included.
    #[must_use]
    pub fn owned(&self) -> &BTreeSet<String> {
        &self.owned
    }

    /// Every file of OUT at or below `relative`, as sorted OUT-relative paths.
    ///
    /// # Errors
    /// On I/O errors.
    pub fn files_below(&self, relative: &str) -> Result<Vec<String>, Error> {
        files_below(&self.root, checked_relative(relative)?)
    }

    /// The bytes of `relative` in OUT, if it exists. OUT may come from a pull request: a
    /// symbolic link, FIFO or device there is refused, never opened, so that no file
    /// outside OUT is read or printed and nothing blocks.
    ///
    /// # Errors
    /// When the entry is not a regular file, or on I/O errors other than a missing file.
    pub fn read(&self, relative: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.root.join(checked_relative(relative)?);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
            Ok(_) => self.read_regular(relative, MAX_OUT_FILE_BYTES).map(Some),
        }
    }
}

impl Existing {
    /// Whether `relative` in OUT holds exactly `bytes`; `None` if nothing is there. Only a
    /// regular file of that size is read: anything else differs, and so does what cannot
    /// be read, since a render replaces it whatever it is.
    #[must_use]
    pub fn holds(&self, relative: &str, bytes: &[u8]) -> Option<bool> {
        let path = self.root.join(checked_relative(relative).ok()?);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Ok(m) if m.file_type().is_file() && m.len() == bytes.len() as u64 => {
                Some(fs::read(&path).is_ok_and(|old| old == bytes))
            }
            _ => Some(false),
        }
    }

    /// The bytes of `relative` in OUT if it is a regular file of at most `max_bytes`; never
    /// through a symbolic link, a FIFO or a device. For `verify`, which may read a tree a
    /// pull request wrote.
    ///
    /// # Errors
    /// When the entry is not a regular file, is too large, or on I/O errors.
    pub fn read_regular(&self, relative: &str, max_bytes: u64) -> Result<Vec<u8>, Error> {
        let path = self.root.join(checked_relative(relative)?);
        let metadata = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if !metadata.file_type().is_file() {
            return Err(Error::Usage(format!(
                "`{}` is not a regular file; mcwan reads no links, FIFOs or devices in OUT",
                path.display()
            )));
        }
        if metadata.len() > max_bytes {
            return Err(Error::Usage(format!(
                "`{}` has {} bytes, more than the {max_bytes} mcwan reads",
                path.display(),
                metadata.len()
            )));
        }
        fs::read(&path).map_err(|e| Error::io(&path, e))
    }
}

/// The file that marks a staging directory as mcwan's; `commit` removes it from OUT right
/// after the swap.
const STAGING_MARKER: &str = ".mcwan-staging";

/// Opens (creating) OUT's lock file, never through a symbolic link and never a FIFO or
/// device, which would block or write elsewhere.
fn open_lock(path: &Path) -> Result<File, Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(Error::Usage(format!(
                "the lock `{}` is not a regular file; remove it",
                path.display()
            )))
        }
        _ => {}
    }
    let mut options = File::options();
    options.create(true).truncate(false).read(true).write(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        #[allow(clippy::cast_possible_wrap)]
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path).map_err(|e| Error::io(path, e))
}

/// Takes the lock at `path` for OUT, saying for whom it waits, and records this process
/// in it for the next one to name.
fn lock(path: &Path, out: &Path, timeout: Option<Duration>) -> Result<File, Error> {
    let mut lock = open_lock(path)?;
    if lock.try_lock().is_err() {
        let mut recorded = Vec::new();
        let _ = (&lock).take(64).read_to_end(&mut recorded);
        // A lock file can be committed by anyone: print none of its control characters.
        let holder: String = String::from_utf8_lossy(&recorded)
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let holder = holder.trim();
        let holder = if holder.is_empty() {
            "another mcwan render"
        } else {
            holder
        };
        eprintln!(
            "waiting for {holder} to finish with `{}` (it holds `{}`{})",
            out.display(),
            path.display(),
            timeout.map_or(String::new(), |t| format!(
                "; giving up after {} s",
                t.as_secs()
            ))
        );
        match timeout {
            None => lock.lock().map_err(|e| Error::io(path, e))?,
            Some(timeout) => {
                let deadline = Instant::now() + timeout;
                while lock.try_lock().is_err() {
                    if Instant::now() >= deadline {
                        return Err(Error::Usage(format!(
                            "{holder} still holds `{}` after {} s (--lock-timeout)",
                            path.display(),
                            timeout.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    // The lock is held: no other mcwan writes the file now.
    let _ = lock
        .set_len(0)
        .and_then(|()| lock.seek(std::io::SeekFrom::Start(0)))
        .and_then(|_| write!(lock, "mcwan render (process {})", std::process::id()));
    Ok(lock)
}

/// A render in progress: files go to a staging directory next to OUT, under OUT's lock.
/// Dropping it without `commit` removes the staging directory and leaves OUT alone.
pub struct Staging {
    out: PathBuf,
    directory: PathBuf,
    previously_owned: Option<BTreeSet<String>>,
    committed: bool,
    _lock: File,
}

impl Staging {
    /// Takes OUT's lock (waiting for another render to finish), checks that mcwan may
    /// write the top-level entries `owns` in OUT, clears what killed renders left behind,
    /// and creates the staging directory.
    ///
    /// # Errors
    /// When OUT is not mcwan's, when writing `owns` would take what mcwan did not write,
    /// or on I/O errors.
    pub fn begin(
        out: &Path,
        owns: &BTreeSet<String>,
        lock_timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "`{}` is not a usable output directory name",
                    out.display()
                ))
            })?
            .to_string();
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let lock_path = parent.join(format!(".{name}.mcwan-lock"));
        let lock = lock(&lock_path, out, lock_timeout)?;

        let prefix = format!(".{name}.mcwan-staging-");
        recover_swapped_out(out, &parent, &prefix)?;
        refuse_mounts(out, &parent)?;
        let previously_owned = take_over(out, owns)?;
        // Only directories a killed render left (they hold the marker) are removed: an entry
        // someone else named like them is not mcwan's.
        for entry in fs::read_dir(&parent)
            .map_err(|e| Error::io(&parent, e))?
            .flatten()
        {
            // Empty: killed before it wrote the marker; with a provenance: the previous OUT,
            // swapped out by a render killed before it removed it.
            let path = entry.path();
            let ours = entry.file_type().is_ok_and(|t| t.is_dir())
                && (path.join(STAGING_MARKER).is_file()
                    || path.join(PROVENANCE).is_file()
                    || fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()));
            if ours
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            {
                remove_staging(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        let mut staging = parent.join(format!("{prefix}{}", std::process::id()));
        let mut attempt = 0;
        while let Err(e) = fs::create_dir(&staging) {
            attempt += 1;
            if e.kind() != std::io::ErrorKind::AlreadyExists || attempt > 100 {
                return Err(Error::io(&staging, e));
            }
            staging = parent.join(format!("{prefix}{}-{attempt}", std::process::id()));
        }
        File::create(staging.join(STAGING_MARKER)).map_err(|e| Error::io(&staging, e))?;
        Ok(Staging {
            out: out.to_path_buf(),
            directory: staging,
            previously_owned,
            committed: false,
            _lock: lock,
        })
    }

    /// Writes files into the staging directory. Safe to call from several threads.
    ///
    /// # Errors
    /// On I/O errors, or a path that would leave OUT (a bug upstream of emit).
    pub fn write(&self, files: &[OutputFile]) -> Result<(), Error> {
        // Files come grouped by directory: create each directory once, not once a file.
        let mut created: Option<&Path> = None;
        for file in files {
            let relative = checked_relative(&file.path)?;
            let target = self.directory.join(relative);
            let dir = relative.parent().filter(|d| Some(*d) != created);
            if let Some(dir) = dir {
                let dir = self.directory.join(dir);
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                created = relative.parent();
            }
            // Each file's bytes are whole in memory: one write, no buffer to copy them into.
            fs::write(&target, &file.bytes).map_err(|e| Error::io(&target, e))?;
        }
        Ok(())
    }

    /// Carries over the entries of OUT that mcwan does not own and swaps the staging
    /// directory in for OUT.
    ///
    /// # Errors
    /// When an entry mcwan does not own would be overwritten, or on I/O errors.
    pub fn commit(mut self) -> Result<(), Error> {
        if let Some(owned) = &self.previously_owned {
            for entry in fs::read_dir(&self.out).map_err(|e| Error::io(&self.out, e))? {
                let name = entry.map_err(|e| Error::io(&self.out, e))?.file_name();
                let ours = name
                    .to_str()
                    .is_some_and(|n| owned.contains(n) || n == PROVENANCE || n == STAGING_MARKER);
                if ours {
                    continue;
                }
                let (from, to) = (self.out.join(&name), self.directory.join(&name));
                // `take_over` checked this; the lock keeps other renders out, not other writers.
                if fs::symlink_metadata(&to).is_ok() {
                    return Err(not_written(from));
                }
                carry(&from, &to)?;
            }
        }
        swap(&self.directory, &self.out)?;
        self.committed = true;
        // The marker came along with the swap; a render killed before this line leaves it
        // in OUT, where the next render's swap brings it back and removes it.
        let marker = self.out.join(STAGING_MARKER);
        fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        // The previous OUT, now where the staging directory was.
        if fs::symlink_metadata(&self.directory).is_ok() {
            remove_staging(&self.directory).map_err(|e| Error::io(&self.directory, e))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_staging(&self.directory);
        }
    }
}

/// Puts the previous OUT back where a render on a filesystem without atomic exchange was
/// killed between its two renames (OUT moved aside, the new one not yet in place): the
/// directory beside OUT with a provenance and no staging marker.
fn recover_swapped_out(out: &Path, parent: &Path, prefix: &str) -> Result<(), Error> {
    if fs::symlink_metadata(out).is_ok() {
        return Ok(());
    }
    let mut aside: Vec<PathBuf> = fs::read_dir(parent)
        .map_err(|e| Error::io(parent, e))?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|e| e.path())
        .filter(|p| p.join(PROVENANCE).is_file() && !p.join(STAGING_MARKER).exists())
        .collect();
    aside.sort();
    match aside.first() {
        Some(previous) => {
            eprintln!(
                "`{}` was moved aside by a render that did not finish; restoring it",
                out.display()
            );
            fs::rename(previous, out).map_err(|e| Error::io(out, e))
        }
        None => Ok(()),
    }
}

/// Refuses an OUT that is a mount point (a container volume: rename cannot move it), or
/// that holds one (the swap would carry it into the previous OUT, which is then deleted).
#[cfg(unix)]
fn refuse_mounts(out: &Path, parent: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = fs::symlink_metadata(out) else {
        return Ok(());
    };
    let device = metadata.dev();
    let parent_device = fs::metadata(parent)
        .map_err(|e| Error::io(parent, e))?
        .dev();
    if device != parent_device {
        return Err(Error::Usage(format!(
            "`{}` is a mount point (a volume?): mcwan replaces OUT in one rename, which cannot move a mount point; render into a directory inside it, such as `{}`",
            out.display(),
            out.join("rendered").display()
        )));
    }
    for entry in walk(out) {
        let entry = entry.map_err(|e| Error::io(out, e.into()))?;
        if entry.file_type().is_dir()
            && entry
                .metadata()
                .map_err(|e| Error::io(entry.path(), e.into()))?
                .dev()
                != device
        {
            return Err(Error::Usage(format!(
                "`{}` is a mount point inside OUT: a render would move it out of OUT and then delete its contents; unmount it, or mount it outside OUT",
                entry.path().display()
            )));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_mounts(_out: &Path, _parent: &Path) -> Result<(), Error> {
    Ok(())
}

/// Creates the file `path` anew: whatever stands at its name (a link a pull request planted
/// there) is removed, never opened or written through.
fn create_anew(path: &Path) -> std::io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    File::options().write(true).create_new(true).open(path)
}

/// Removes a staging directory, or a previous OUT swapped out, so that a render killed at
/// any moment leaves something the next one recognises as mcwan's: the marker goes in
/// first (created anew, never written through what stands at its name) and out last, and
/// then the directory is empty.
fn remove_staging(directory: &Path) -> std::io::Result<()> {
    let marker = directory.join(STAGING_MARKER);
    create_anew(&marker)?;
    for entry in fs::read_dir(directory)? {
        let entry = entry?;
        if entry.file_name() == STAGING_MARKER {
            continue;
        }
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    fs::remove_file(&marker)?;
    fs::remove_dir(directory)
}

/// Writes or deletes files of the declarations repository, each atomically (a sibling
/// temporary file renamed over the target).
///
/// # Errors
/// On I/O errors, or a path that would leave the repository.
pub fn apply_edits(dir: &Path, writes: &[(String, Option<String>)]) -> Result<(), Error> {
    for (relative, content) in writes {
        let path = dir.join(checked_relative(relative)?);
        match content {
            Some(text) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let temporary = path.with_extension("mcwan-edit");
                let mut file = create_anew(&temporary).map_err(|e| Error::io(&temporary, e))?;
                std::io::Write::write_all(&mut file, text.as_bytes())
                    .map_err(|e| Error::io(&temporary, e))?;
                drop(file);
                fs::rename(&temporary, &path).map_err(|e| Error::io(&path, e))?;
            }
            None => fs::remove_file(&path).map_err(|e| Error::io(&path, e))?,
        }
    }
    Ok(())
}

/// Replaces `out` with `staging` in one step where the platform allows it; afterwards
/// `staging` holds the previous OUT, if there was one.
fn swap(staging: &Path, out: &Path) -> Result<(), Error> {
    if fs::symlink_metadata(out).is_err() {
        return fs::rename(staging, out).map_err(|e| Error::io(out, e));
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, staging, CWD, out, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // Filesystems without RENAME_EXCHANGE fall through to two renames.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(Error::io(out, e.into())),
        }
    }
    swap_by_renames(staging, out)
}

/// The swap on filesystems without atomic exchange: OUT moves aside under the staging
/// directory's name plus `-old` (so the next render recognises it), the staging directory
/// takes its place, and the previous OUT takes the staging directory's name. A render
/// killed between the first two renames leaves no OUT; the next one restores it.
fn swap_by_renames(staging: &Path, out: &Path) -> Result<(), Error> {
    let mut name = staging.file_name().unwrap_or_default().to_os_string();
    name.push("-old");
    let old = staging.with_file_name(name);
    fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
    fs::rename(staging, out).map_err(|e| Error::io(out, e))?;
    fs::rename(&old, staging).map_err(|e| Error::io(staging, e))
}

/// The top-level entries mcwan owns in `out`, once it is clear that writing `owns` takes
/// nothing someone else wrote: `None` if there is no OUT yet. An OUT that exists, is not
/// empty and has no provenance is someone else's, and mcwan refuses it.
fn take_over(out: &Path, owns: &BTreeSet<String>) -> Result<Option<BTreeSet<String>>, Error> {
    let Some(owned) = read_owned(out)? else {
        return Ok(None);
    };
    for entry in fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let name = entry.map_err(|e| Error::io(out, e))?.file_name();
        if let Some(name) = name.to_str() {
            if owns.contains(name) && !owned.entries.contains(name) {
                return Err(not_written(out.join(name)));
            }
        }
    }
    // mcwan used to own single files: one someone added beside them is not its to replace.
    if let Some(files) = &owned.files {
        for entry in owned.entries.iter().filter(|e| owns.contains(*e)) {
            if let Some(foreign) = files_below(out, Path::new(entry))?
                .into_iter()
                .find(|f| !files.contains(f))
            {
                return Err(not_written(out.join(foreign)));
            }
        }
    }
    Ok(Some(owned.entries))
}

/// Whether mcwan could have written the top-level entry `name` of `out`: the summary, the
/// fabric's directory, or a cluster directory (a DNS-1123 label holding a regular
/// `kustomization.yaml`). A provenance is a file anyone can edit: what it claims beyond
/// these (`.git`, `README.md`, a directory of documents) is not mcwan's to replace or
/// delete, and is carried over like any foreign entry.
fn could_have_written(out: &Path, name: &str) -> bool {
    let kind = |path: &Path| fs::symlink_metadata(path).map(|m| m.file_type()).ok();
    let path = out.join(name);
    match name {
        crate::SUMMARY => kind(&path).is_none_or(|t| t.is_file()),
        FABRIC_DIRECTORY => kind(&path).is_none_or(|t| t.is_dir()),
        _ if !is_dns1123_label(name) => false,
        _ => match kind(&path) {
            None => true,
            Some(t) => {
                t.is_dir() && kind(&path.join("kustomization.yaml")).is_some_and(|t| t.is_file())
            }
        },
    }
}

/// The refusal to overwrite `path`, which mcwan did not write.
fn not_written(path: PathBuf) -> Error {
    Error::OutputNotOwned {
        path,
        reason: "mcwan would overwrite this, which it did not write".into(),
    }
}

/// What the provenance in `out` says mcwan owns: `None` if there is no OUT yet; nothing
/// if it is empty.
fn read_owned(out: &Path) -> Result<Option<Owned>, Error> {
    let metadata = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(out, e)),
    };
    let refuse = |reason: &str| {
        Err(Error::OutputNotOwned {
            path: out.to_path_buf(),
            reason: reason.to_string(),
        })
    };
    if metadata.file_type().is_symlink() {
        return refuse("it is a symbolic link; give the real directory");
    }
    if !metadata.is_dir() {
        return refuse("it is not a directory");
    }
    let provenance_path = out.join(PROVENANCE);
    match fs::read(&provenance_path) {
        Ok(bytes) => match serde_json::from_slice::<Recorded>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(Recorded::owned)
        {
            Ok(mut owned) => {
                owned.entries.retain(|name| could_have_written(out, name));
                Ok(Some(owned))
            }
            Err(e) => refuse(&format!("its `{PROVENANCE}` is not mcwan's ({e})")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if fs::read_dir(out)
                .map_err(|e| Error::io(out, e))?
                .next()
                .is_none()
            {
                Ok(Some(Owned {
                    entries: BTreeSet::new(),
                    files: None,
                }))
            } else {
                refuse(&format!(
                    "it is not empty and has no `{PROVENANCE}`, so mcwan did not create it"
                ))
            }
        }
        Err(e) => Err(Error::io(&provenance_path, e)),
    }
}

/// Every file at or below `root/relative`, as `/`-separated paths relative to `root`,
/// sorted; none if it does not exist. Symbolic links are listed as files, never followed.
fn files_below(root: &Path, relative: &Path) -> Result<Vec<String>, Error> {
    let start = root.join(relative);
    match fs::symlink_metadata(&start) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&start, e)),
        Ok(_) => {}
    }
    let mut files = Vec::new();
    for entry in walk(&start) {
        let entry = entry.map_err(|e| Error::io(&start, e.into()))?;
        if !entry.file_type().is_dir() {
            let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
    files.sort();
    Ok(files)
}

/// A walk of `start` that never follows a symbolic link, `start` included.
fn walk(start: &Path) -> walkdir::WalkDir {
    walkdir::WalkDir::new(start)
        .follow_links(false)
        .follow_root_links(false)
}

/// Carries a foreign entry of OUT into the staging directory without copying its data:
/// everything but directories is hard-linked (the same inode, so mode, owner, times, other
/// hard links and sparse extents are kept), and directories are recreated with their mode
/// and modification time. Where the system refuses a hard link (another filesystem,
/// protected links), a file is copied instead and a warning says so.
fn carry(from: &Path, to: &Path) -> Result<(), Error> {
    let mut directories = Vec::new();
    for entry in walk(from) {
        let entry = entry.map_err(|e| Error::io(from, e.into()))?;
        let target = match entry.path().strip_prefix(from) {
            Ok(inner) if !inner.as_os_str().is_empty() => to.join(inner),
            _ => to.to_path_buf(),
        };
        if entry.file_type().is_dir() {
            fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
            let metadata = entry
                .metadata()
                .map_err(|e| Error::io(entry.path(), e.into()))?;
            directories.push((target, metadata));
        } else if let Err(error) = fs::hard_link(entry.path(), &target) {
            if !entry.file_type().is_file() {
                return Err(Error::io(entry.path(), error));
            }
            eprintln!(
                "warning: `{}` is copied, not linked ({error}): its owner, times and other links are not kept",
                entry.path().display()
            );
            fs::copy(entry.path(), &target).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    // Deepest first, once their entries exist: a read-only directory takes no new entry,
    // and every new entry changes a directory's modification time.
    for (directory, metadata) in directories.iter().rev() {
        fs::set_permissions(directory, metadata.permissions())
            .map_err(|e| Error::io(directory, e))?;
        if let Ok(modified) = metadata.modified() {
            File::open(directory)
                .and_then(|d| d.set_modified(modified))
                .map_err(|e| Error::io(directory, e))?;
        }
    }
    Ok(())
}

/// A relative path that stays inside OUT: no absolute path, no `..`, no empty segment.
fn checked_relative(path: &str) -> Result<&Path, Error> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|s| {
            !s.is_empty() && s != "." && s != ".." && !s.contains('\\') && !s.contains('\0')
        });
    if ok {
        Ok(Path::new(path))
    } else {
        Err(Error::Internal(format!(
            "refusing to write `{path}`, which is not a plain path inside the output directory"
        )))
    }
}

/// OUT may sit inside the declarations repository (that is the usual layout), but never
/// where mcwan reads declarations from, and never above or at the repository itself.
pub(crate) fn check_output_location(dir: &Path, out: &Path) -> Result<(), Error> {
    let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let out_abs = resolve(out)?;
    let refuse = |why: &str| {
        Err(Error::Usage(format!(
            "output directory `{}` {why}",
            out.display()
        )))
    };
    if dir.starts_with(&out_abs) {
        return refuse("contains the declarations; render would replace them");
    }
    for input in ["clusters", "policies", "clusterset.yaml", "clusterset.yml"] {
        if out_abs.starts_with(dir.join(input)) {
            return refuse(&format!(
                "is inside `{input}`, where mcwan reads declarations"
            ));
        }
    }
    Ok(())
}

/// An absolute path for `path` as the OS will resolve it once its missing directories are
/// created: component by component, symbolic links resolved where the prefix exists, and
/// `..` taken lexically where it does not (a directory mcwan creates has no link to
/// follow). So `OUT/missing/../clusters` is seen inside `clusters`.
fn resolve(path: &Path) -> Result<PathBuf, Error> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(Path::new("."), e))?
            .join(path)
    };
    let mut current = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => current.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                current.pop();
            }
            Component::Normal(name) => {
                current.push(name);
                if let Ok(real) = current.canonicalize() {
                    current = real;
                }
            }
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_out_are_refused() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "",
            "a/./b",
            "a\\..\\b",
        ] {
            assert!(checked_relative(bad).is_err(), "{bad} was accepted");
        }
        assert!(checked_relative("cluster-1/secure/x.yaml").is_ok());
    }

    #[test]
    fn a_provenance_that_lists_files_owns_their_top_level_entries() {
        let legacy = r#"{"generator": "mcwan", "version": "0.1.0", "inputDigest": "sha256:0",
            "files": ["SUMMARY.md", "cluster-1/a/x.yaml", "cluster-1/y.yaml", "sdwan/classes.yaml"]}"#;
        let recorded: Recorded = serde_json::from_str(legacy).unwrap();
        let owned = recorded.owned().unwrap();
        assert_eq!(
            owned.entries.into_iter().collect::<Vec<_>>(),
            ["SUMMARY.md", "cluster-1", "sdwan"]
        );
        assert_eq!(owned.files.unwrap().len(), 4);
    }

    #[test]
    fn a_provenance_owns_only_plain_entries() {
        for bad in [
            r#"{"generator": "mcwan", "owns": ["a/../b"]}"#,
            r#"{"generator": "mcwan", "owns": [".."]}"#,
            r#"{"generator": "mcwan"}"#,
            r#"{"generator": "mcwan", "owns": [], "files": []}"#,
            r#"{"generator": "other", "owns": ["a"]}"#,
        ] {
            let recorded: Recorded = serde_json::from_str(bad).unwrap();
            assert!(recorded.owned().is_err(), "{bad}");
        }
    }

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    /// Regression: the swap without atomic exchange moved OUT aside as `.out.old`, a name
    /// no later render recognised, so a render killed there left the old OUT behind.
    #[test]
    fn the_swap_by_renames_leaves_the_previous_out_under_the_staging_name() {
        let temp = tempfile::tempdir().unwrap();
        let (out, staging) = (
            temp.path().join("out"),
            temp.path().join(".out.mcwan-staging-1"),
        );
        tree(&out, &[(PROVENANCE, "old")]);
        tree(&staging, &[(PROVENANCE, "new")]);
        swap_by_renames(&staging, &out).unwrap();
        assert_eq!(fs::read_to_string(out.join(PROVENANCE)).unwrap(), "new");
        assert_eq!(fs::read_to_string(staging.join(PROVENANCE)).unwrap(), "old");
        assert_eq!(fs::read_dir(temp.path()).unwrap().count(), 2);
    }

    /// A render killed between the two renames leaves OUT aside; the next one restores it
    /// before anything else, so its foreign entries are not lost with the staging ones.
    #[test]
    fn out_moved_aside_by_a_killed_render_is_restored() {
        let temp = tempfile::tempdir().unwrap();
        let out = temp.path().join("out");
        let aside = temp.path().join(".out.mcwan-staging-1-old");
        let staging = temp.path().join(".out.mcwan-staging-1");
        let provenance = r#"{"generator": "mcwan", "owns": ["cluster-1"]}"#;
        tree(
            &aside,
            &[
                (PROVENANCE, provenance),
                ("cluster-1/kustomization.yaml", ""),
                ("notes.txt", "mine"),
            ],
        );
        tree(&staging, &[(STAGING_MARKER, ""), (PROVENANCE, provenance)]);
        let owns = BTreeSet::from(["cluster-1".to_string()]);
        let begun = Staging::begin(&out, &owns, None).unwrap();
        assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        assert!(!aside.exists() && !staging.exists());
        drop(begun);
    }

    /// A render killed while deleting the previous OUT left a directory that was neither
    /// empty, nor marked, nor holding a provenance, so no render removed it. Removal now
    /// plants the marker first (never through a link at its name) and removes it last.
    #[test]
    fn a_staging_directory_is_removed_marker_first_and_last() {
        let temp = tempfile::tempdir().unwrap();
        let staging = temp.path().join("s");
        tree(
            &staging,
            &[(PROVENANCE, "p"), ("a/b.yaml", "x"), ("c.yaml", "y")],
        );
        remove_staging(&staging).unwrap();
        assert!(!staging.exists());
        // A link planted at the marker's name is replaced, not written through.
        #[cfg(unix)]
        {
            let victim = temp.path().join("victim");
            fs::write(&victim, "untouched").unwrap();
            tree(&staging, &[("a.yaml", "x")]);
            std::os::unix::fs::symlink(&victim, staging.join(STAGING_MARKER)).unwrap();
            remove_staging(&staging).unwrap();
            assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        }
    }
}
