//! Integration tests of the mlops-cas public API, as other crates (the pipeline, hooks, k8s)
//! use it: hashing paths, storing and restoring objects, and moving them through a remote.
#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failures")]

use std::path::Path;

use mlops_cas::{Error, InitOptions, Manifest, Object, Repo, TransferOptions};

fn repo() -> (tempfile::TempDir, Repo) {
    let d = tempfile::tempdir().unwrap();
    let repo = Repo::init(d.path(), &InitOptions::new().no_git(true)).unwrap();
    (d, repo)
}

fn write(root: &Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// `n` small files `<folder>/<i % folders>/f<i>`, each holding `<prefix> <i>`.
fn write_spread(root: &Path, folder: &str, n: usize, folders: usize, prefix: &str) {
    for i in 0..n {
        write(
            root,
            &format!("{folder}/{}/f{i}", i % folders),
            format!("{prefix} {i}").as_bytes(),
        );
    }
}

#[test]
fn hash_path_is_stable_and_stores_nothing() {
    let (d, repo) = repo();
    write(d.path(), "dir/a.txt", b"a");
    write(d.path(), "dir/sub/b.txt", b"b");
    let first = repo.hash_path(Path::new("dir")).unwrap();
    assert_eq!(first.files, Some(2));
    assert_eq!(first.size, 2);
    assert_eq!(repo.hash_path(Path::new("dir")).unwrap(), first);
    assert!(
        !repo.has_object(&first).unwrap(),
        "hash_path must not store"
    );
    // Any change to content or layout changes the hash.
    write(d.path(), "dir/sub/b.txt", b"B");
    assert_ne!(repo.hash_path(Path::new("dir")).unwrap().hash, first.hash);
}

#[test]
fn store_and_restore_a_directory() {
    let (d, repo) = repo();
    write(d.path(), "out/model.bin", &[7u8; 5000]);
    write(d.path(), "out/metrics/m.json", b"{}");
    let object = repo.store_path(Path::new("out")).unwrap();
    assert!(repo.has_object(&object).unwrap());
    std::fs::remove_dir_all(d.path().join("out")).unwrap();
    assert_eq!(repo.restore(&object, Path::new("out")).unwrap(), 2);
    assert_eq!(
        std::fs::read(d.path().join("out/model.bin")).unwrap(),
        vec![7u8; 5000]
    );
    assert_eq!(repo.hash_path(Path::new("out")).unwrap(), object);
}

#[test]
fn restore_of_an_unknown_object_is_a_clear_error() {
    let (_d, repo) = repo();
    let object = Object {
        hash: mlops_cas::hash_bytes(b"nowhere"),
        size: 7,
        files: None,
    };
    let err = repo.restore(&object, Path::new("x.bin")).unwrap_err();
    assert!(matches!(err, Error::MissingObject { .. }), "{err}");
    assert!(err.to_string().contains("is not in the cache"));
}

#[test]
fn objects_move_through_a_folder_remote_and_are_verified() {
    let (d, repo) = repo();
    let remote_dir = tempfile::tempdir().unwrap();
    write(d.path(), "f.bin", &[1u8; 100]);
    let object = repo.store_path(Path::new("f.bin")).unwrap();
    let remote = mlops_cas::Remote::open(
        "r",
        &mlops_cas::RemoteConfig {
            url: remote_dir.path().to_string_lossy().into_owned(),
            options: Default::default(),
        },
        d.path(),
    )
    .unwrap();
    let report = repo
        .push_objects(
            &[(object.hash, object.size)],
            &remote,
            &TransferOptions::default(),
        )
        .unwrap();
    assert_eq!(report.transferred, 1);
    let again = repo
        .push_objects(
            &[(object.hash, object.size)],
            &remote,
            &TransferOptions::default(),
        )
        .unwrap();
    assert_eq!((again.transferred, again.already_present), (0, 1));

    // A second repository fetches it by hash.
    let (_d2, other) = repo_pair();
    let got = other
        .fetch_objects(
            &[(object.hash, object.size)],
            &remote,
            &TransferOptions::default().jobs(2),
        )
        .unwrap();
    assert_eq!(got.transferred, 1);
    assert!(other.has_object(&object).unwrap());

    // A flipped byte in the remote is caught, and nothing enters the cache.
    let (_d3, third) = repo_pair();
    let key = remote_dir.path().join(object.hash.object_key());
    let mut perms = std::fs::metadata(&key).unwrap().permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "the test tampers with the remote"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&key, perms).unwrap();
    let mut bytes = std::fs::read(&key).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&key, bytes).unwrap();
    let err = third
        .fetch_objects(
            &[(object.hash, object.size)],
            &remote,
            &TransferOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(!third.has_object(&object).unwrap());
}

fn repo_pair() -> (tempfile::TempDir, Repo) {
    repo()
}

#[test]
fn progress_reports_every_object_and_byte() {
    let (d, repo) = repo();
    let remote_dir = tempfile::tempdir().unwrap();
    let mut objects = Vec::new();
    for i in 0..20u8 {
        write(d.path(), &format!("f{i}"), &vec![i; 10 + usize::from(i)]);
        let o = repo.store_path(Path::new(&format!("f{i}"))).unwrap();
        objects.push((o.hash, o.size));
    }
    let remote = mlops_cas::Remote::open(
        "r",
        &mlops_cas::RemoteConfig {
            url: remote_dir.path().to_string_lossy().into_owned(),
            options: Default::default(),
        },
        d.path(),
    )
    .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options =
        TransferOptions::default().progress(std::sync::Arc::new(move |p: &mlops_cas::Progress| {
            sink.lock().unwrap().push(*p);
        }));
    repo.push_objects(&objects, &remote, &options).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 20);
    let last = seen.iter().max_by_key(|p| p.objects_done).unwrap();
    assert_eq!(last.objects_done, 20);
    assert_eq!(last.bytes_done, objects.iter().map(|(_, s)| s).sum::<u64>());
    assert_eq!(last.bytes_total, last.bytes_done);
}

/// Every object of an added folder holds the bytes its name says, also when the walk order
/// (folder `a` entered before file `a-c`) differs from manifest order (`a-c` < `a/b` bytewise).
/// An earlier version paired manifest entries with walk-order paths and linked `a/b` under the
/// hash of `a-c`.
#[test]
fn added_folder_objects_match_their_names_whatever_the_walk_order() {
    let (d, repo) = repo();
    write(d.path(), "d/a/b", b"one");
    write(d.path(), "d/a-c", b"two");
    write(d.path(), "d/a.x/y/z", b"three");
    write(d.path(), "d/a0", b"four");
    repo.add(&[d.path().join("d")]).unwrap();
    let pointer = std::fs::read_to_string(d.path().join("d.mlops")).unwrap();
    let hash: mlops_cas::Hash = pointer
        .lines()
        .find_map(|l| {
            l.strip_prefix("hash = \"")?
                .strip_suffix('"')
                .map(str::to_owned)
        })
        .unwrap()
        .parse()
        .unwrap();
    let manifest =
        Manifest::from_bytes(&std::fs::read(repo.cache().object_path(&hash)).unwrap()).unwrap();
    assert_eq!(manifest.entries.len(), 4);
    for e in &manifest.entries {
        let object = repo.cache().object_path(&e.hash);
        assert_eq!(mlops_cas::hash_file(&object).unwrap(), e.hash, "{}", e.path);
        assert_eq!(
            std::fs::read(&object).unwrap(),
            std::fs::read(d.path().join("d").join(&e.path)).unwrap(),
            "{}",
            e.path
        );
    }
    assert!(repo.status().unwrap().is_empty());
}

/// `status` on a large hard-linked folder lists cache shards instead of stat-ing each object;
/// that shortcut must still see a missing object and an object replaced by other bytes.
#[test]
fn status_of_a_large_linked_folder_sees_missing_and_replaced_objects() {
    let (d, repo) = repo();
    write_spread(d.path(), "big", 3000, 7, "content");
    repo.add(&[d.path().join("big")]).unwrap();
    assert!(repo.status().unwrap().is_empty());

    let reopen = || Repo::open(d.path()).unwrap();
    assert!(
        reopen().status().unwrap().is_empty(),
        "fresh process, in sync"
    );

    // Remove one object from the cache: not in cache (the workspace still has the file).
    let gone = mlops_cas::hash_bytes(b"content 17");
    let gone_path = repo.cache().object_path(&gone);
    std::fs::remove_file(&gone_path).unwrap();
    let st = reopen().status().unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].changes, vec![mlops_cas::Change::NotInCache]);

    // Put other bytes at that object's name (a different inode): corrupt, and quarantined.
    std::fs::write(&gone_path, b"content 18").unwrap();
    let st = reopen().status().unwrap();
    assert_eq!(st[0].changes, vec![mlops_cas::Change::Corrupt]);
    assert!(
        !gone_path.exists(),
        "a corrupt object is moved out of the way"
    );
}

/// A symbolic link to a file inside an added folder stores the target's bytes as a regular,
/// read-only object, never the link itself (a link in the cache would point anywhere).
#[test]
fn a_linked_file_in_an_added_folder_becomes_a_regular_object() {
    use std::os::unix::fs::PermissionsExt;
    let (d, repo) = repo();
    write(d.path(), "outside.bin", b"the target's bytes");
    write(d.path(), "d/plain", b"plain");
    std::os::unix::fs::symlink(d.path().join("outside.bin"), d.path().join("d/link")).unwrap();
    // Several files, so that hard links are known to work by the time the link is added.
    for i in 0..40 {
        write(d.path(), &format!("d/f{i:02}"), format!("{i}").as_bytes());
    }
    repo.add(&[d.path().join("d")]).unwrap();
    let object = repo
        .cache()
        .object_path(&mlops_cas::hash_bytes(b"the target's bytes"));
    let meta = std::fs::symlink_metadata(&object).unwrap();
    assert!(meta.file_type().is_file(), "{:?}", meta.file_type());
    assert_eq!(std::fs::read(&object).unwrap(), b"the target's bytes");
    assert_eq!(
        meta.permissions().mode() & 0o222,
        0,
        "objects are read-only"
    );
    assert!(repo.status().unwrap().is_empty());
}

/// Objects added by hard link are the workspace files: read-only afterwards, with the stamp the
/// folder listing saw, and a second add finds them all present.
#[test]
fn hard_linked_objects_are_read_only_and_a_second_add_adds_nothing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (d, repo) = repo();
    write_spread(d.path(), "d", 300, 3, "body");
    let added = repo.add(&[d.path().join("d")]).unwrap();
    assert_eq!(added[0].new_objects, 301, "300 files and the manifest");
    for i in [0, 150, 299] {
        let object = repo
            .cache()
            .object_path(&mlops_cas::hash_bytes(format!("body {i}").as_bytes()));
        let work = d.path().join(format!("d/{}/f{i}", i % 3));
        let (o, w) = (
            std::fs::metadata(&object).unwrap(),
            std::fs::metadata(&work).unwrap(),
        );
        assert_eq!(o.ino(), w.ino(), "hard-linked");
        assert_eq!(o.permissions().mode() & 0o222, 0);
    }
    let again = Repo::open(d.path())
        .unwrap()
        .add(&[d.path().join("d")])
        .unwrap();
    assert_eq!(again[0].new_objects, 0);
}

/// Re-adding after the cache was emptied finds every hash in the hash cache (nothing is read
/// again) and links the files back by name: the objects come back whole.
#[test]
fn re_adding_into_an_emptied_cache_relinks_from_the_hash_cache() {
    use std::os::unix::fs::MetadataExt;
    let (d, repo) = repo();
    write_spread(d.path(), "d", 200, 4, "again");
    repo.add(&[d.path().join("d")]).unwrap();
    drop(repo);
    std::fs::remove_dir_all(d.path().join(".mlops/cache")).unwrap();
    let repo = Repo::open(d.path()).unwrap();
    let added = repo.add(&[d.path().join("d")]).unwrap();
    assert_eq!(added[0].new_objects, 201);
    for i in [0, 99, 199] {
        let body = format!("again {i}");
        let object = repo
            .cache()
            .object_path(&mlops_cas::hash_bytes(body.as_bytes()));
        assert_eq!(std::fs::read(&object).unwrap(), body.as_bytes());
        let work = d.path().join(format!("d/{}/f{i}", i % 4));
        assert_eq!(
            std::fs::metadata(&object).unwrap().ino(),
            std::fs::metadata(&work).unwrap().ino()
        );
    }
    assert!(repo.status().unwrap().is_empty());
}

/// `gc` drops the hash-cache entries of files that are gone (an untracked folder's files and
/// their removed objects), and keeps those of files still there, tracked or not.
#[test]
fn gc_drops_hash_cache_entries_of_gone_files_and_keeps_those_of_files_still_there() {
    let (d, repo) = repo();
    write_spread(d.path(), "keep", 40, 2, "kept");
    write_spread(d.path(), "gone", 60, 3, "gone");
    repo.add(&[d.path().join("keep"), d.path().join("gone")])
        .unwrap();
    // Hashed but not tracked, as a pipeline stage's dependency is: its entry must stay.
    write(d.path(), "src/dep.py", b"print(1)\n");
    repo.hash_path(&d.path().join("src/dep.py")).unwrap();
    // The same through a link to a file outside the workspace: the entry is the target's.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shared.csv"), b"a,b\n").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("shared.csv"),
        d.path().join("src/shared.csv"),
    )
    .unwrap();
    repo.hash_path(&d.path().join("src/shared.csv")).unwrap();
    drop(repo);
    let dep = mlops_cas::Stamp::of(&std::fs::metadata(d.path().join("src/dep.py")).unwrap());
    let shared =
        mlops_cas::Stamp::of(&std::fs::metadata(outside.path().join("shared.csv")).unwrap());
    let hashes = d.path().join(".mlops/state/hashes");
    let full = std::fs::metadata(&hashes).unwrap().len();
    std::fs::remove_dir_all(d.path().join("gone")).unwrap();
    std::fs::remove_file(d.path().join("gone.mlops")).unwrap();

    let dry = Repo::open(d.path()).unwrap().gc(false).unwrap();
    assert!(dry.stale_hash_entries >= 60, "{dry:?}");
    assert_eq!(std::fs::metadata(&hashes).unwrap().len(), full, "dry run");

    let forced = Repo::open(d.path()).unwrap().gc(true).unwrap();
    assert_eq!(forced.stale_hash_entries, dry.stale_hash_entries);
    assert_eq!(forced.unreferenced, 61, "60 files and their manifest");
    let after = std::fs::metadata(&hashes).unwrap().len();
    assert_eq!(
        full - after,
        72 * forced.stale_hash_entries,
        "72 bytes a record"
    );

    // Header, checksum, and at least the kept folder's 40 files (each one entry: the workspace
    // file is its object).
    assert!(after >= 16 + 72 * 40 + 32, "{after}");
    let kept = mlops_cas::StatCache::load(&hashes);
    assert_eq!(kept.get(&dep), Some(mlops_cas::hash_bytes(b"print(1)\n")));
    assert_eq!(kept.get(&shared), Some(mlops_cas::hash_bytes(b"a,b\n")));
    let kept_file = d.path().join("keep/0/f0");
    let kept_file = mlops_cas::Stamp::of(&std::fs::metadata(kept_file).unwrap());
    assert_eq!(kept.get(&kept_file), Some(mlops_cas::hash_bytes(b"kept 0")));
    let repo = Repo::open(d.path()).unwrap();
    assert_eq!(repo.gc(true).unwrap().stale_hash_entries, 0);
    assert!(repo.status().unwrap().is_empty());
}

/// A folder's manifest is read from the cache and verified once per `Repo`: `pull` lists the
/// objects to fetch from it and then checks them out with it. A new `Repo` reads it again.
#[test]
fn a_manifest_is_read_once_per_repo_and_again_by_the_next() {
    use std::os::unix::fs::PermissionsExt;
    let (d, repo) = repo();
    write_spread(d.path(), "d", 30, 3, "once");
    let added = repo.add(&[d.path().join("d")]).unwrap();
    // A checkout of the unchanged folder reads the manifest, and has nothing to do.
    assert!(repo.checkout(&[], false).unwrap().is_empty());
    // The manifest object is damaged after this Repo verified it.
    let manifest = repo.cache().object_path(&added[0].object.hash);
    let mut body = std::fs::read(&manifest).unwrap();
    body[10] ^= 1;
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&manifest, &body).unwrap();
    std::fs::remove_dir_all(d.path().join("d")).unwrap();
    // This Repo checks the folder out from the manifest it verified.
    assert_eq!(repo.checkout(&[], false).unwrap().len(), 1);
    assert_eq!(
        std::fs::read(d.path().join("d/1/f7")).unwrap(),
        b"once 7".as_slice()
    );
    drop(repo);
    // The next one reads the damaged object and refuses it.
    std::fs::remove_dir_all(d.path().join("d")).unwrap();
    let repo = Repo::open(d.path()).unwrap();
    let err = repo.checkout(&[], false).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        !d.path().join("d").exists(),
        "nothing corrupt is checked out"
    );
}
