// Package loader turns the committed metadata log into images and deltas
// and hands them to publishers, as Kafka's MetadataLoader and
// MetadataPublisher do.
//
// A Loader is the metadata quorum's state machine on every node (voter or
// observer): Apply and Restore run on the quorum's goroutine and only build
// the next image and a Delta saying what the entry touched. Publishers (the
// partition manager, through it the group and transaction loaders) get
// (Delta, Image) on the loader's own goroutine, in log order, so opening or
// recovering a log never holds up Raft. A publisher that is behind is not
// queued every entry: it sees the newest image with one Delta spanning
// everything it missed (deltas merge).
//
// Delta.LocalChanges(node) is Kafka's TopicsDelta.localChanges: the
// partitions this node must lead, follow, or stop and delete.
//
// It imports internal/metadata only.
package loader
