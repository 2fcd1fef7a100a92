package daemon

import (
	"errors"

	"meshd.dev/meshd/daemon/store"
)

// unknownInbox returns the sequence numbers of seqs that are not in the
// inbox, so msg.ack can tell a typo from a removal. A message another
// client acknowledges at the same moment may be reported either way; the
// acknowledgement itself stays idempotent.
func (n *Node) unknownInbox(seqs []uint64) ([]uint64, error) {
	var unknown []uint64
	seen := make(map[uint64]bool, len(seqs))
	for _, seq := range seqs {
		if seen[seq] {
			continue
		}
		seen[seq] = true
		if seq == 0 {
			unknown = append(unknown, seq)
			continue
		}
		entries, _, err := n.st.Inbox(seq-1, 1)
		var ce *store.CorruptEntryError
		switch {
		case errors.As(err, &ce):
			// A damaged entry is there (and ack removes it); one after
			// seq means seq itself is not.
			if ce.Seq != seq {
				unknown = append(unknown, seq)
			}
		case err != nil:
			return nil, err
		case len(entries) == 0 || entries[0].Seq != seq:
			unknown = append(unknown, seq)
		}
	}
	return unknown, nil
}
