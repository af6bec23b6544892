// Package e2e holds end-to-end tests: they build the palyra binary once and
// run several real agent processes on 127.0.0.1, driven through the CLI
// exactly as a user would. It imports nothing of this module.
package e2e
