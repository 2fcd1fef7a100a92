package main

import (
	"fmt"
	"strings"
	"unicode"
)

// displayText makes remote text (a message body) safe to print for a
// human: anyone who can send this node a message chooses it. Control and
// format characters (terminal escapes, BEL, bidi overrides) are shown
// escaped, as \x1b or \u202e, so they cannot drive the terminal; line
// breaks stay but the lines after the first are indented, so a body cannot
// imitate another message's "#N ... from ..." line. --json shows the text
// as sent.
func displayText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString("\n    ")
		case r == '\t':
			b.WriteRune(r)
		case r == unicode.ReplacementChar:
			b.WriteRune(r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
