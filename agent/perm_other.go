//go:build !unix

package agent

import "io/fs"

// privateUmask: there is no umask outside unix; prepareDataDir's chmods
// are all there is.
func privateUmask() {}

// checkOwner: file ownership is not checked outside unix.
func checkOwner(string, fs.FileInfo) error { return nil }
