package opaque

import (
	"bytes"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	raw := New()
	enc := string(Encode(raw))
	if len(enc) != EncodedLen {
		t.Fatalf("encoded length %d", len(enc))
	}
	if got, ok := Parse(enc); !ok || !bytes.Equal(got, raw) {
		t.Fatal("round trip failed")
	}
	if bytes.Equal(New(), raw) {
		t.Fatal("two tokens are equal")
	}
	for _, bad := range []string{"", "short", enc + "A", enc[:42] + "=", strings.Repeat("*", 43), enc[:42] + "\n",
		strings.Repeat("A", 42) + "B"} { // a non-canonical last character
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if h := Hash(raw); h == enc || len(h) != EncodedLen {
		t.Fatalf("hash %q", h)
	}
	if v := Secret("abc").LogValue().String(); strings.Contains(v, "abc") {
		t.Fatalf("LogValue = %q", v)
	}
}
