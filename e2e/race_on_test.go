//go:build race

package e2e

// raceBuild: under `go test -race` the agents are built with the race
// detector too, so data races in the daemon fail the e2e tests.
const raceBuild = true
