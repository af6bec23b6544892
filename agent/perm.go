package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// secretFiles are the data dir's top-level files that hold secrets.
var secretFiles = []string{fileKey, fileCAKey, fileAdmin}

// prepareDataDir makes an existing data dir private before anything in it
// is read or written: the dir is set to 0700 (MkdirAll leaves an existing
// dir's mode alone), the secret files, if group or other may access them,
// lose those bits (with a warning naming the file, never its content), and
// so does everything under raft/ (badger's files and raft snapshots hold
// the replicated control state: CA key, live pairing PINs). A dir owned by
// another user, or one that cannot be changed, is an error. A missing dir
// is left for identity.save to create (0700): a start that fails before a
// mesh exists leaves nothing behind.
//
// Together with privateUmask (files created later by badger and raft) this
// keeps every secret 0600 in a 0700 dir, also for data dirs written by
// older versions or loosened by hand.
func prepareDataDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if err := checkOwner(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data dir %s has mode %v and cannot be made private (0700): %w", dir, fi.Mode().Perm(), err)
		}
		log.Warn("data dir was not private; set its mode to 0700", "dir", dir, "was", fi.Mode().Perm().String())
	}
	for _, name := range secretFiles {
		path := filepath.Join(dir, name)
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("data dir: %s is not a regular file", path)
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(path, fi.Mode().Perm()&^0o077); err != nil {
			return fmt.Errorf("data dir: %s has mode %v and cannot be made private (0600): %w", path, fi.Mode().Perm(), err)
		}
		log.Warn("secret file was readable by group or others; removed their access. If others may have read it, replace it (for admin.token: delete it and restart the agent)",
			"file", path, "was", fi.Mode().Perm().String())
	}
	return tightenTree(filepath.Join(dir, dirRaft), log)
}

// tightenTree removes group and other access from root and everything
// under it. Symbolic links are not followed (chmod would change their
// target); nothing in raft/ makes them.
func tightenTree(root string, log *slog.Logger) error {
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == root {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 == 0 {
			return nil
		}
		n++
		return os.Chmod(path, fi.Mode().Perm()&^0o077)
	})
	if err != nil {
		return fmt.Errorf("data dir: make %s private: %w", root, err)
	}
	if n > 0 {
		log.Warn("raft files were readable by group or others; removed their access", "dir", root, "files", n)
	}
	return nil
}
