package agent_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/palyra-mesh/palyra/agent"
	"github.com/palyra-mesh/palyra/testutil"
)

// TestAPIBadInput: every bad request gets a clear JSON error with a
// fitting status, never a crash, and changes nothing.
func TestAPIBadInput(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 1)
	base := "http://" + c.Agent(0).HTTPAddr()
	tok, err := agent.ReadAdminToken(c.DataDir(0))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no credential", "GET", "/api/v1/status", "", "", 401, "unauthenticated"},
		{"wrong credential", "GET", "/api/v1/status", "palyra_local_wrong", "", 401, "unauthenticated"},
		{"unknown endpoint", "GET", "/api/v1/nope", tok, "", 404, "not_found"},
		{"bad JSON", "POST", "/api/v1/pairing/tickets", tok, "{", 400, "bad_request"},
		{"bad ttl", "POST", "/api/v1/pairing/tickets", tok, `{"ttl":"soon"}`, 400, "bad_request"},
		{"unknown role", "POST", "/api/v1/pairing/tickets", tok, `{"roles":["god"]}`, 400, "bad_request"},
		{"body too large", "POST", "/api/v1/pairing/tickets", tok, `{"ttl":"` + strings.Repeat("9", 70<<10) + `"}`, 413, "too_large"},
		{"unknown node", "GET", "/api/v1/nodes/ghost", tok, "", 404, "not_found"},
		{"approve nobody", "POST", "/api/v1/nodes/ghost/approve", tok, "", 404, "not_found"},
		{"revoke unknown", "POST", "/api/v1/nodes/ghost/revoke", tok, "", 404, "not_found"},
		{"revoke self", "POST", "/api/v1/nodes/node0/revoke", tok, "", 409, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if res.StatusCode != tt.status || json.Unmarshal(b, &e) != nil || e.Error.Code != tt.code || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d with code %s", res.StatusCode, b, tt.status, tt.code)
			}
			if strings.Contains(string(b), tok) {
				t.Fatal("the answer contains the credential")
			}
		})
	}
	if got := c.Status(0); len(got.Members) != 1 || got.Coordinator == nil {
		t.Fatalf("state changed: %+v", got)
	}
}

func TestMetrics(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 1)
	res, err := http.Get("http://" + c.Agent(0).HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, want := range []string{`palyra_members{state="alive"} 1`, "palyra_coordinator 1", "palyra_quorum 1", "palyra_voter 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
}
