package agent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/palyra-mesh/palyra/ca"
)

// joinCodePrefix starts every join code, with its format version.
const joinCodePrefix = "palyra1-"

// joinCode bundles what a new machine needs besides its PIN: where to find
// a member and which CA to expect. It is as secret as the PIN it carries.
type joinCode struct {
	PIN           string   `json:"p"`
	MeshID        string   `json:"m"`
	CAFingerprint string   `json:"f"`
	Peers         []string `json:"a,omitempty"`
}

func encodeJoinCode(c joinCode) string {
	b, _ := json.Marshal(c)
	return joinCodePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// parseJoinInput accepts a bare PIN or a join code.
func parseJoinInput(s string) (string, joinCode, error) {
	rest, ok := strings.CutPrefix(s, joinCodePrefix)
	if !ok {
		if err := ca.ValidPIN(s); err != nil {
			return "", joinCode{}, fmt.Errorf("--pin: %w", err)
		}
		return s, joinCode{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", joinCode{}, fmt.Errorf("--pin: malformed join code")
	}
	var c joinCode
	if err := json.Unmarshal(b, &c); err != nil {
		return "", joinCode{}, fmt.Errorf("--pin: malformed join code")
	}
	if err := ca.ValidPIN(c.PIN); err != nil {
		return "", joinCode{}, fmt.Errorf("--pin: join code: %w", err)
	}
	return c.PIN, c, nil
}
