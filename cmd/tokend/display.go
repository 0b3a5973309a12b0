package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// shown reports whether a terminal shows r as itself. Format characters
// (Unicode Cf: zero-width spaces, bidi overrides that reorder the rest of
// the line) and other non-graphic characters (controls, escape sequences,
// unassigned code points) are not.
func shown(r rune) bool { return unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r) }

// displayText escapes what a terminal would not show as itself: non-graphic
// and format characters as \uXXXX (\UXXXXXXXX beyond the BMP) and bytes that
// are not UTF-8 as \xXX. A backslash is doubled, so no text can pass for
// an escape. Stored data from before validation tightened, or written past
// it, may hold any of these.
func displayText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r == '\\' || r == utf8.RuneError || !shown(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case shown(r):
			b.WriteRune(r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

// escapeJSON rewrites encoding/json output so that it holds no character a
// terminal would not show as itself: encoding/json escapes ASCII controls
// but writes format characters such as U+200B and U+202E raw. Outside
// strings, JSON output has only ASCII, so every rewritten rune is inside a
// string, where a \u escape (a surrogate pair beyond the BMP) means the same.
func escapeJSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r < utf8.RuneSelf || shown(r) || (r == utf8.RuneError && n == 1) {
			out = append(out, b[i:i+n]...)
		} else if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += n
	}
	return out
}
