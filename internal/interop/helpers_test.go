package interop

import (
	"html"
	"io"
	"net/http"
	"testing"

	"github.com/tokend/tokend/internal/config"
)

type configT = config.Config

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func htmlUnescape(s string) string { return html.UnescapeString(s) }
