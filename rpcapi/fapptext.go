package rpcapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Text forms of FAPP's binary objects, for pasting between people and
// tools: a prefix naming the kind, then the binary encoding in unpadded
// base64url (RFC 4648 section 5). The prefix keeps a credential from being
// pasted where a revocation list is expected.
const (
	// FAPPCredentialPrefix starts a license credential (fapp.Credential).
	FAPPCredentialPrefix = "fapp-credential:"
	// FAPPRevocationPrefix starts an issuer's revocation list (fapp.Revocation).
	FAPPRevocationPrefix = "fapp-revocation:"
	// FAPPIdentityPrefix starts a therapist node's keys as an issuer needs
	// them (protocol.CompactIdentity: signing key and KEM key hash), in hex
	// (see FormatFAPPIdentity).
	FAPPIdentityPrefix = "fapp-identity:"
)

// MaxFAPPText bounds a text form's encoded length (a revocation list of
// about 24,000 serials; the API request limit is 256 KiB).
const MaxFAPPText = 256 << 10

// ErrBadFAPPText: a FAPP text form is malformed.
var ErrBadFAPPText = errors.New("rpcapi: malformed FAPP text form")

// FormatFAPPText returns prefix followed by b in unpadded base64url.
func FormatFAPPText(prefix string, b []byte) string {
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseFAPPText parses a text form strictly: the expected prefix and
// canonical unpadded base64url of at least one byte. White space around the
// whole string and line breaks inside it (as a mail program may add) are
// ignored. Errors wrap ErrBadFAPPText.
func ParseFAPPText(prefix, s string) ([]byte, error) {
	if len(s) > MaxFAPPText {
		return nil, fmt.Errorf("%w: %d characters, at most %d", ErrBadFAPPText, len(s), MaxFAPPText)
	}
	s = strings.Join(strings.Fields(s), "")
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		what := "nothing"
		if i := strings.IndexByte(s, ':'); i > 0 && i < 32 {
			what = fmt.Sprintf("%q", s[:i+1])
		}
		return nil, fmt.Errorf("%w: want a string starting with %q, got %s", ErrBadFAPPText, prefix, what)
	}
	if rest == "" {
		return nil, fmt.Errorf("%w: nothing after %q", ErrBadFAPPText, prefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: the part after %q is not canonical unpadded base64url", ErrBadFAPPText, prefix)
	}
	return b, nil
}
