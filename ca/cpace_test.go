package ca_test

import (
	"bytes"
	"testing"

	"github.com/palyra-mesh/palyra/ca"
)

// exchange runs a whole CPace exchange and returns both ISKs.
func exchange(t *testing.T, iPRS, iCI, iSID, rPRS, rCI, rSID []byte) (iISK, rISK []byte) {
	t.Helper()
	init, ya, err := ca.NewInitiator(iPRS, iCI, iSID, nil)
	if err != nil {
		t.Fatalf("new initiator: %v", err)
	}
	yb, rISK, err := ca.Respond(rPRS, rCI, rSID, ya, nil)
	if err != nil {
		t.Fatalf("respond: %v", err)
	}
	iISK, err = init.Finish(yb)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if len(ya) != 32 || len(yb) != 32 || len(iISK) != 32 || len(rISK) != 32 {
		t.Fatalf("lengths: Ya %d, Yb %d, ISKs %d and %d", len(ya), len(yb), len(iISK), len(rISK))
	}
	return iISK, rISK
}

func TestCPaceAgreement(t *testing.T) {
	pin, ci, sid := []byte("123456"), []byte("home-lab|12D3KooWNew"), []byte("0123456789abcdef")
	for _, tc := range []struct {
		name          string
		rPRS, rCI, rS []byte
		agree         bool
	}{
		{"right PIN", pin, ci, sid, true},
		{"wrong PIN", []byte("123457"), ci, sid, false},
		{"different sid", pin, ci, []byte("0123456789abcdeX"), false},
		{"different CI", pin, []byte("home-lab|12D3KooWOther"), sid, false},
		{"CI moved into sid", pin, nil, append(append([]byte(nil), ci...), sid...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iISK, rISK := exchange(t, pin, ci, sid, tc.rPRS, tc.rCI, tc.rS)
			if got := bytes.Equal(iISK, rISK); got != tc.agree {
				t.Fatalf("ISKs equal = %v, want %v", got, tc.agree)
			}
			// Key confirmation: the initiator accepts the responder's tag
			// exactly when the keys agree.
			tag := ca.Tag(rISK, "palyra/pair/bundle", []byte("bundle"))
			if got := ca.CheckTag(iISK, tag, "palyra/pair/bundle", []byte("bundle")); got != tc.agree {
				t.Fatalf("CheckTag = %v, want %v", got, tc.agree)
			}
		})
	}
}

func TestCPaceFreshShares(t *testing.T) {
	pin, sid := []byte("123456"), []byte("sid")
	_, ya1, err := ca.NewInitiator(pin, nil, sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ya2, err := ca.NewInitiator(pin, nil, sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ya1, ya2) {
		t.Fatal("two runs with the same PIN sent the same share")
	}
	// The random source is honoured: the same seed gives the same share.
	_, yaA, _ := ca.NewInitiator(pin, nil, sid, testRand(1))
	_, yaB, _ := ca.NewInitiator(pin, nil, sid, testRand(1))
	if !bytes.Equal(yaA, yaB) {
		t.Fatal("share does not come from the given random source")
	}
}

func TestCPaceInvalidShares(t *testing.T) {
	pin, sid := []byte("123456"), []byte("sid")
	_, valid, err := ca.NewInitiator(pin, nil, sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	nonCanonical := bytes.Clone(valid)
	nonCanonical[31] |= 0x80 // the top bit of a canonical encoding is 0
	for _, tc := range []struct {
		name  string
		share []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"short", valid[:31]},
		{"long", append(bytes.Clone(valid), 0)},
		{"identity", make([]byte, 32)},
		{"all ones", bytes.Repeat([]byte{0xff}, 32)},
		{"non-canonical", nonCanonical},
		{"odd field element", append([]byte{1}, make([]byte, 31)...)},
		{"text", []byte("this is not a ristretto element!")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yb, isk, err := ca.Respond(pin, nil, sid, tc.share, nil)
			wantErr(t, err, ca.ErrInvalidShare)
			if yb != nil || isk != nil {
				t.Error("Respond returned a share or key with an error")
			}
			init, _, err := ca.NewInitiator(pin, nil, sid, nil)
			if err != nil {
				t.Fatal(err)
			}
			isk, err = init.Finish(tc.share)
			wantErr(t, err, ca.ErrInvalidShare)
			if isk != nil {
				t.Error("Finish returned a key with an error")
			}
		})
	}
}

func TestCPaceMisuse(t *testing.T) {
	t.Run("Finish twice", func(t *testing.T) {
		init, ya, err := ca.NewInitiator([]byte("1"), nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		yb, _, err := ca.Respond([]byte("1"), nil, nil, ya, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := init.Finish(yb); err != nil {
			t.Fatal(err)
		}
		_, err = init.Finish(yb)
		wantErr(t, err, ca.ErrSessionDone)
	})
	t.Run("empty password", func(t *testing.T) {
		_, _, err := ca.NewInitiator(nil, nil, nil, nil)
		wantErr(t, err, ca.ErrInvalidPIN)
		_, ya, err := ca.NewInitiator([]byte("1"), nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = ca.Respond(nil, nil, nil, ya, nil)
		wantErr(t, err, ca.ErrInvalidPIN)
	})
}

func TestTag(t *testing.T) {
	isk := bytes.Repeat([]byte{7}, 32)
	tag := ca.Tag(isk, "csr", []byte("ab"), []byte("c"))
	if len(tag) != 32 {
		t.Fatalf("tag is %d bytes", len(tag))
	}
	if !ca.CheckTag(isk, tag, "csr", []byte("ab"), []byte("c")) {
		t.Fatal("own tag refused")
	}
	for _, tc := range []struct {
		name  string
		isk   []byte
		tag   []byte
		label string
		parts [][]byte
	}{
		{"other key", bytes.Repeat([]byte{8}, 32), tag, "csr", [][]byte{[]byte("ab"), []byte("c")}},
		{"other label", isk, tag, "bundle", [][]byte{[]byte("ab"), []byte("c")}},
		{"parts split elsewhere", isk, tag, "csr", [][]byte{[]byte("a"), []byte("bc")}},
		{"parts joined", isk, tag, "csr", [][]byte{[]byte("abc")}},
		{"label absorbs part", isk, tag, "csrab", [][]byte{[]byte("c")}},
		{"truncated tag", isk, tag[:16], "csr", [][]byte{[]byte("ab"), []byte("c")}},
		{"empty tag", isk, nil, "csr", [][]byte{[]byte("ab"), []byte("c")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ca.CheckTag(tc.isk, tc.tag, tc.label, tc.parts...) {
				t.Fatal("accepted")
			}
		})
	}
}
