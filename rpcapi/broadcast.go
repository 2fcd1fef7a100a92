package rpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"meshd.dev/meshd/protocol"
)

// Broadcast channel methods.
const (
	MethodChannelCreate  = "channel.create"
	MethodChannelJoin    = "channel.join"
	MethodChannelShare   = "channel.share"
	MethodChannelLeave   = "channel.leave"
	MethodChannelList    = "channel.list"
	MethodChannelPublish = "channel.publish"
	MethodChannelHistory = "channel.history"
)

// ChannelNode is what the channel methods need from the daemon (part of
// Node). A channel is named in requests by its ID (8 hex characters) or its
// name; errors wrap ErrNotJoined for a channel the node has not joined.
type ChannelNode interface {
	ChannelCreate(ctx context.Context, name string) (Channel, error)
	ChannelJoin(ctx context.Context, name string, key protocol.ChannelKey) (Channel, error)
	ChannelShare(ctx context.Context, channel string) (ChannelShare, error)
	ChannelLeave(ctx context.Context, channel string) (Channel, error)
	ChannelList(ctx context.Context) ([]Channel, error)
	ChannelPublish(ctx context.Context, p ChannelPublishParams) (ChannelPublishResult, error)
	ChannelHistory(ctx context.Context, p ChannelHistoryParams) (ChannelHistoryPage, error)
}

// ErrNotJoined: the request names a channel this node has not joined.
// CodeNotJoined.
var ErrNotJoined = errors.New("channel not joined")

// CodeNotJoined is the code of ErrNotJoined.
const CodeNotJoined = -32005

// Channel history page sizes.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// ChannelSharePrefix starts every share string.
const ChannelSharePrefix = "meshd-channel:"

// ErrBadShare: a share string is malformed.
var ErrBadShare = errors.New("rpcapi: malformed channel share string")

// channelName is what a channel name may be: it travels in share strings,
// so it must survive a paste and hold no ':'.
var channelName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckChannelName reports whether name is a valid channel name: 1 to 64
// characters of A-Z, a-z, 0-9, '.', '_' and '-'.
func CheckChannelName(name string) error {
	if !channelName.MatchString(name) {
		return fmt.Errorf("channel name %q: want 1 to 64 characters of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

// FormatChannelShare returns the share string of a channel:
//
//	meshd-channel:<name>:<key>
//
// where <key> is the 32-byte channel key in unpadded base64url (RFC 4648
// section 5, 43 characters). Whoever has the string can read and write the
// channel: pass it only to its members, over a channel you trust.
func FormatChannelShare(name string, key protocol.ChannelKey) string {
	return ChannelSharePrefix + name + ":" + base64.RawURLEncoding.EncodeToString(key[:])
}

// ParseChannelShare parses a share string strictly (leading and trailing
// white space, as a paste may add, is ignored): the prefix, a valid channel
// name, ':', and exactly 43 characters of canonical unpadded base64url
// holding 32 bytes. Errors wrap ErrBadShare and never contain the key.
func ParseChannelShare(s string) (name string, key protocol.ChannelKey, err error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, ChannelSharePrefix)
	if !ok {
		return "", key, fmt.Errorf("%w: it does not start with %q", ErrBadShare, ChannelSharePrefix)
	}
	name, enc, ok := strings.Cut(rest, ":")
	if !ok {
		return "", key, fmt.Errorf("%w: want %s<name>:<key>", ErrBadShare, ChannelSharePrefix)
	}
	if err := CheckChannelName(name); err != nil {
		return "", key, fmt.Errorf("%w: %v", ErrBadShare, err)
	}
	if len(enc) != base64.RawURLEncoding.EncodedLen(protocol.ChannelKeySize) {
		return "", key, fmt.Errorf("%w: the key has %d characters, want %d", ErrBadShare, len(enc), base64.RawURLEncoding.EncodedLen(protocol.ChannelKeySize))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(raw) != protocol.ChannelKeySize {
		return "", key, fmt.Errorf("%w: the key is not canonical unpadded base64url", ErrBadShare)
	}
	copy(key[:], raw)
	return name, key, nil
}

// ChannelCreateParams are channel.create's parameters.
type ChannelCreateParams struct {
	// Name is the channel's name: 1 to 64 characters of A-Z a-z 0-9 . _ -.
	// It is local (each member may call the channel what it likes) and
	// travels in the share string.
	Name string `json:"name"`
}

// ChannelJoinParams are channel.join's parameters.
type ChannelJoinParams struct {
	// Share is a share string, meshd-channel:<name>:<key>.
	Share string `json:"share"`
}

// ChannelParams name one joined channel.
type ChannelParams struct {
	// Channel is the channel's ID (8 hex characters) or its name.
	Channel string `json:"channel"`
}

// Channel is a joined broadcast channel.
type Channel struct {
	// ID is the channel's public 4-byte ID in hex.
	ID string `json:"id"`
	// Name is the channel's local name.
	Name string `json:"name"`
	// Joined is when this node joined (or created) the channel.
	Joined time.Time `json:"joined"`
}

// ChannelShare is channel.share's result.
type ChannelShare struct {
	// Channel is the channel's ID in hex.
	Channel string `json:"channel"`
	// Share is the share string: it holds the channel's secret key.
	Share string `json:"share"`
}

// ChannelPublishParams are channel.publish's parameters. Exactly one of
// Text and Payload is set.
type ChannelPublishParams struct {
	// Channel is the channel's ID (8 hex characters) or its name.
	Channel string `json:"channel"`
	// Text is a UTF-8 body.
	Text string `json:"text,omitempty"`
	// Payload is a binary body (base64 in JSON).
	Payload []byte `json:"payload,omitempty"`
	// Signed adds this node's signature inside the encryption, so members
	// see who sent the message (150 bytes more on the air instead of 24).
	Signed bool `json:"signed,omitempty"`
}

// ChannelPublishResult is channel.publish's result.
type ChannelPublishResult struct {
	// Channel is the channel's ID in hex.
	Channel string `json:"channel"`
	// Seq is the message's sequence number in this node's channel history.
	Seq uint64 `json:"seq"`
}

// ChannelHistoryParams are channel.history's parameters.
type ChannelHistoryParams struct {
	// Channel is the channel's ID (8 hex characters) or its name.
	Channel string `json:"channel"`
	// After is the cursor: return messages with a sequence number above it
	// (0 for the oldest kept).
	After uint64 `json:"after,omitempty"`
	// Limit caps the page (default 100, at most 1000).
	Limit int `json:"limit,omitempty"`
}

// ChannelHistoryPage is channel.history's result.
type ChannelHistoryPage struct {
	// Messages are the page's messages, oldest first.
	Messages []ChannelMessage `json:"messages"`
	// Next is the cursor for the following page; equal to After when the
	// page is empty.
	Next uint64 `json:"next"`
	// More is true when more messages follow Next.
	More bool `json:"more"`
}

// ChannelMessage is a message of a broadcast channel, as this node
// received (or sent) it.
type ChannelMessage struct {
	// Seq is the message's sequence number in this node's channel history
	// (shared by all channels, growing).
	Seq uint64 `json:"seq"`
	// Channel is the channel's ID in hex.
	Channel string `json:"channel"`
	// ChannelName is the channel's local name on this node.
	ChannelName string `json:"channel_name"`
	// Signed is true when the sender signed the message; only then are
	// From and FromFingerprint set, and verified.
	Signed bool `json:"signed"`
	// From is the verified sender's mesh address (signed messages only).
	From string `json:"from,omitempty"`
	// FromFingerprint is the verified sender's key fingerprint (signed
	// messages only).
	FromFingerprint string `json:"from_fingerprint,omitempty"`
	// Local is true for a message this node published.
	Local bool `json:"local,omitempty"`
	// Hops is the hop count the frame carried when it arrived: how many
	// nodes forwarded it on mesh links (0 over gossip).
	Hops int `json:"hops"`
	// Received is when this node stored the message.
	Received time.Time `json:"received"`
	// Payload is the body (base64 in JSON).
	Payload []byte `json:"payload"`
	// Text is the payload when it is valid UTF-8.
	Text string `json:"text,omitempty"`
}

// channelMethods are the channel.* entries of the method table.
func channelMethods() []MethodSpec {
	errsJoined := []int{CodeInvalidParams, CodeNotJoined, CodeUnavailable, CodeInternal}
	return []MethodSpec{
		define(MethodChannelCreate, "Create a broadcast channel with a fresh random key.",
			"Draws a new 32-byte channel key from the operating system's randomness, joins the channel and returns it. Pass channel.share's string to the other members.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *ChannelCreateParams) (Channel, error) {
				if err := CheckChannelName(p.Name); err != nil {
					return Channel{}, invalidParams("%v", err)
				}
				return env.srv.node.ChannelCreate(ctx, p.Name)
			}),
		define(MethodChannelJoin, "Join a channel from a share string.",
			"`share` is `meshd-channel:<name>:<key>` (see \"Share strings\" above). Joining a channel already joined renames it and is otherwise harmless.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *ChannelJoinParams) (Channel, error) {
				name, key, err := ParseChannelShare(p.Share)
				if err != nil {
					return Channel{}, invalidParams("share: %v", err)
				}
				return env.srv.node.ChannelJoin(ctx, name, key)
			}),
		define(MethodChannelShare, "Return a channel's share string.",
			"The string holds the channel's secret key: whoever has it can read and write the channel.",
			errsJoined,
			func(ctx context.Context, env *callEnv, p *ChannelParams) (ChannelShare, error) {
				if err := checkChannelRef(p.Channel); err != nil {
					return ChannelShare{}, err
				}
				return env.srv.node.ChannelShare(ctx, p.Channel)
			}),
		define(MethodChannelLeave, "Leave a channel and delete its key and history.",
			"Delivery stops at once; the node keeps relaying the channel's frames on mesh links like any other node's.",
			errsJoined,
			func(ctx context.Context, env *callEnv, p *ChannelParams) (Channel, error) {
				if err := checkChannelRef(p.Channel); err != nil {
					return Channel{}, err
				}
				return env.srv.node.ChannelLeave(ctx, p.Channel)
			}),
		define(MethodChannelList, "List the joined channels.",
			"Channels in ID order; the keys are not listed (see channel.share).",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) ([]Channel, error) {
				cs, err := env.srv.node.ChannelList(ctx)
				if cs == nil {
					cs = []Channel{}
				}
				return cs, err
			}),
		define(MethodChannelPublish, "Publish a message on a joined channel.",
			fmt.Sprintf("Exactly one of `text` and `payload` is set, at most %d bytes (%d signed). The message goes out on gossip to IP peers and is flooded on mesh links; there is no receipt. It lands in this node's own history, marked `local`.", MaxChannelBody, MaxChannelBody-protocol.ChannelSignedOverhead+protocol.ChannelOverhead),
			append(errsJoined, CodeRefused, CodeDiskFull),
			func(ctx context.Context, env *callEnv, p *ChannelPublishParams) (ChannelPublishResult, error) {
				if err := checkPublish(p); err != nil {
					return ChannelPublishResult{}, err
				}
				return env.srv.node.ChannelPublish(ctx, *p)
			}),
		define(MethodChannelHistory, "Page through a channel's latest messages.",
			fmt.Sprintf("Returns the messages this node received (or sent) on the channel with a sequence number above `after`, oldest first, at most `limit` (default %d, at most %d). The node keeps the latest `channels.history_size` messages per channel; it has only what it received while it ran and was a member.", DefaultHistoryLimit, MaxHistoryLimit),
			errsJoined,
			func(ctx context.Context, env *callEnv, p *ChannelHistoryParams) (ChannelHistoryPage, error) {
				if err := checkChannelRef(p.Channel); err != nil {
					return ChannelHistoryPage{}, err
				}
				switch {
				case p.Limit < 0:
					return ChannelHistoryPage{}, invalidParams("limit %d is negative", p.Limit)
				case p.Limit > MaxHistoryLimit:
					return ChannelHistoryPage{}, invalidParams("limit %d is above the maximum %d", p.Limit, MaxHistoryLimit)
				case p.Limit == 0:
					p.Limit = DefaultHistoryLimit
				}
				page, err := env.srv.node.ChannelHistory(ctx, *p)
				if page.Messages == nil {
					page.Messages = []ChannelMessage{}
				}
				return page, err
			}),
	}
}

// MaxChannelBody is the largest unsigned channel message body.
const MaxChannelBody = protocol.MaxChannelFrameSize - protocol.ChannelOverhead

func checkChannelRef(ref string) error {
	if ref == "" {
		return invalidParams("channel is required: its ID (8 hex characters) or name")
	}
	return nil
}

func checkPublish(p *ChannelPublishParams) error {
	if err := checkChannelRef(p.Channel); err != nil {
		return err
	}
	max := MaxChannelBody
	if p.Signed {
		max -= protocol.ChannelSignedOverhead - protocol.ChannelOverhead
	}
	switch {
	case p.Text != "" && len(p.Payload) > 0:
		return invalidParams("set exactly one of text and payload, not both")
	case p.Text == "" && len(p.Payload) == 0:
		return invalidParams("set one of text (a UTF-8 string) or payload (base64 bytes); the message is empty")
	case len(p.Text)+len(p.Payload) > max:
		return invalidParams("message of %d bytes is larger than %d, the most a channel frame carries", len(p.Text)+len(p.Payload), max)
	}
	return nil
}

// ChannelCreate calls channel.create.
func (c *Client) ChannelCreate(ctx context.Context, name string) (Channel, error) {
	var v Channel
	return v, c.Call(ctx, MethodChannelCreate, ChannelCreateParams{Name: name}, &v)
}

// ChannelJoin calls channel.join.
func (c *Client) ChannelJoin(ctx context.Context, share string) (Channel, error) {
	var v Channel
	return v, c.Call(ctx, MethodChannelJoin, ChannelJoinParams{Share: share}, &v)
}

// ChannelShare calls channel.share.
func (c *Client) ChannelShare(ctx context.Context, channel string) (ChannelShare, error) {
	var v ChannelShare
	return v, c.Call(ctx, MethodChannelShare, ChannelParams{Channel: channel}, &v)
}

// ChannelLeave calls channel.leave.
func (c *Client) ChannelLeave(ctx context.Context, channel string) (Channel, error) {
	var v Channel
	return v, c.Call(ctx, MethodChannelLeave, ChannelParams{Channel: channel}, &v)
}

// ChannelList calls channel.list.
func (c *Client) ChannelList(ctx context.Context) ([]Channel, error) {
	var v []Channel
	return v, c.Call(ctx, MethodChannelList, nil, &v)
}

// ChannelPublish calls channel.publish.
func (c *Client) ChannelPublish(ctx context.Context, p ChannelPublishParams) (ChannelPublishResult, error) {
	var v ChannelPublishResult
	return v, c.Call(ctx, MethodChannelPublish, p, &v)
}

// ChannelHistory calls channel.history.
func (c *Client) ChannelHistory(ctx context.Context, p ChannelHistoryParams) (ChannelHistoryPage, error) {
	var v ChannelHistoryPage
	return v, c.Call(ctx, MethodChannelHistory, p, &v)
}
