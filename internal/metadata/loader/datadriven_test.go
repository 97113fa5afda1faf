package loader

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/stratalog/strata/internal/metadata"
)

// TestDeltaDataDriven drives images through the scripts in testdata/delta:
// each command but the last two commits one entry.
//
//	create name=N id=I parts=1/2/3;2/3/1   (replicas per partition; the first leads, all in the ISR)
//	add-partitions name=N parts=..         (CreatePartitions)
//	leader name=N p=P leader=L             (a new leader, leader epoch + 1)
//	isr name=N p=P isr=1/2                 (an ISR change, partition epoch + 1)
//	reassign name=N p=P replicas=.. [adding=..] [removing=..]
//	delete name=N
//	broker id=B [port=P] [fenced]          (a registration, or fencing)
//	config [topic=N|broker=B] key=K [value=V]
//	local node=B      (the local changes of B over the entries since the last local/changes
//	                  that an entry followed, merged)
//	changes           (the topics, brokers and configs changed since the last local/changes)
//
// local and changes also check that the merged delta says the same as the
// full comparison of the two images (Diff).
func TestDeltaDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/delta", func(t *testing.T, path string) {
		h := &deltaHarness{img: metadata.Empty(), ids: map[string]metadata.UUID{}, names: map[metadata.UUID]string{}}
		h.mark = h.img
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return h.run(t, td)
		})
	})
}

type deltaHarness struct {
	img   *metadata.Image
	mark  *metadata.Image // the image at the last local/changes
	acc   *Delta          // the step deltas since, merged
	read  bool            // local or changes ran: the next entry moves the mark
	ids   map[string]metadata.UUID
	names map[metadata.UUID]string
}

func (h *deltaHarness) run(t *testing.T, td *datadriven.TestData) string {
	arg := func(key string) string {
		for _, a := range td.CmdArgs {
			if a.Key == key {
				if len(a.Vals) == 0 {
					return "true"
				}
				return strings.Join(a.Vals, ",")
			}
		}
		return ""
	}
	num := func(key string) int32 {
		n, err := strconv.Atoi(arg(key))
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", td.Pos, key, arg(key), err)
		}
		return int32(n)
	}
	topic := func() *metadata.Topic {
		tp := h.img.Topics[arg("name")]
		if tp == nil {
			t.Fatalf("%s: no topic %q", td.Pos, arg("name"))
		}
		return tp
	}
	part := func() (*metadata.Topic, int32, metadata.Partition) {
		tp := topic()
		i := num("p")
		return tp, i, *tp.Partitions[i]
	}
	precord := func(id metadata.UUID, i int32, p metadata.Partition) *metadata.PartitionRecord {
		return &metadata.PartitionRecord{TopicID: id, Partition: i, Replicas: p.Replicas, ISR: p.ISR, Leader: p.Leader,
			LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas}
	}
	newParts := func(id metadata.UUID, from int32) []metadata.Record {
		var recs []metadata.Record
		for i, rs := range strings.Split(arg("parts"), ";") {
			replicas := nodes(t, rs)
			recs = append(recs, precord(id, from+int32(i), metadata.Partition{Replicas: replicas, ISR: replicas, Leader: replicas[0]}))
		}
		return recs
	}

	if td.Cmd != "local" && td.Cmd != "changes" && h.read {
		h.mark, h.acc, h.read = h.img, nil, false
	}
	var recs []metadata.Record
	switch td.Cmd {
	case "create":
		name := arg("name")
		id := metadata.UUID{0: byte(len(h.ids) + 1)}
		h.ids[arg("id")], h.names[id] = id, arg("id")
		recs = append([]metadata.Record{&metadata.TopicRecord{Name: name, ID: id}}, newParts(id, 0)...)
	case "add-partitions":
		tp := topic()
		recs = newParts(tp.ID, int32(len(tp.Partitions)))
	case "leader":
		tp, i, p := part()
		p.Leader, p.LeaderEpoch, p.PartitionEpoch = num("leader"), p.LeaderEpoch+1, p.PartitionEpoch+1
		recs = []metadata.Record{precord(tp.ID, i, p)}
	case "isr":
		tp, i, p := part()
		p.ISR, p.PartitionEpoch = nodes(t, arg("isr")), p.PartitionEpoch+1
		recs = []metadata.Record{precord(tp.ID, i, p)}
	case "reassign":
		tp, i, p := part()
		p.Replicas, p.AddingReplicas, p.RemovingReplicas = nodes(t, arg("replicas")), nodes(t, arg("adding")), nodes(t, arg("removing"))
		p.PartitionEpoch++
		if !slices.Contains(p.Replicas, p.Leader) {
			p.Leader, p.LeaderEpoch = p.Replicas[0], p.LeaderEpoch+1
		}
		p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(n int32) bool { return !slices.Contains(p.Replicas, n) })
		recs = []metadata.Record{precord(tp.ID, i, p)}
	case "delete":
		recs = []metadata.Record{&metadata.RemoveTopicRecord{ID: topic().ID}}
	case "broker":
		port := int32(9092)
		if arg("port") != "" {
			port = num("port")
		}
		id := num("id")
		if arg("fenced") != "" {
			b := h.img.Brokers[id]
			recs = []metadata.Record{&metadata.FenceBrokerRecord{NodeID: id, Epoch: b.Epoch, Fenced: true}}
		} else {
			epoch := int64(h.img.Offset + 1)
			recs = []metadata.Record{&metadata.RegisterBrokerRecord{NodeID: id, Epoch: epoch, Host: "localhost", Port: port}}
		}
	case "config":
		r := &metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: arg("topic"), Name: arg("key")}
		if arg("broker") != "" {
			r.ResourceType, r.ResourceName = metadata.ResourceBroker, arg("broker")
		}
		if v := arg("value"); v != "" {
			r.Value = &v
		}
		recs = []metadata.Record{r}
	case "local":
		d := h.take(t)
		return h.formatLocal(d.LocalChanges(num("node")))
	case "changes":
		d := h.take(t)
		return h.formatChanges(d)
	default:
		t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
	}
	next, err := h.img.Apply(h.img.Offset+1, recs)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	step := Step(h.img, next, recs)
	if h.acc == nil {
		h.acc = step
	} else {
		h.acc = h.acc.Merge(step)
	}
	h.img = next
	return ""
}

// take returns the merged delta since the mark, after
// checking it against Diff for every node the images mention.
func (h *deltaHarness) take(t *testing.T) *Delta {
	d := h.acc
	if d == nil {
		d = Step(h.mark, h.img, nil)
	}
	if d.Prev != h.mark || d.Image != h.img {
		t.Fatalf("merged delta spans offsets %d..%d, want %d..%d", d.Prev.Offset, d.Image.Offset, h.mark.Offset, h.img.Offset)
	}
	full := Diff(h.mark, h.img)
	for node := int32(1); node <= 5; node++ {
		if a, b := h.formatLocal(d.LocalChanges(node)), h.formatLocal(full.LocalChanges(node)); a != b {
			t.Fatalf("node %d: merged delta's local changes\n%s\ndiffer from the full comparison's\n%s", node, a, b)
		}
	}
	if a, b := h.formatChanges(d), h.formatChanges(full); a != b {
		t.Fatalf("merged delta's changes\n%s\ndiffer from the full comparison's\n%s", a, b)
	}
	h.read = true
	return d
}

func (h *deltaHarness) formatLocal(lc LocalChanges) string {
	var b strings.Builder
	for _, r := range lc.Deletes {
		fmt.Fprintf(&b, "delete %s-%d id=%s\n", r.Topic, r.Partition, h.names[r.TopicID])
	}
	for _, r := range lc.Leaders {
		p := r.Registration
		fmt.Fprintf(&b, "lead %s-%d id=%s epoch=%d isr=%v\n", r.Topic, r.Partition, h.names[r.TopicID], p.LeaderEpoch, p.ISR)
	}
	for _, r := range lc.Followers {
		p := r.Registration
		fmt.Fprintf(&b, "follow %s-%d id=%s leader=%d epoch=%d\n", r.Topic, r.Partition, h.names[r.TopicID], r.Leader(), p.LeaderEpoch)
	}
	if lc.Empty() {
		return "nothing\n"
	}
	return b.String()
}

func (h *deltaHarness) formatChanges(d *Delta) string {
	var b strings.Builder
	for _, c := range d.Topics() {
		fmt.Fprintf(&b, "topic %s", c.Name)
		if !c.Deleted.IsZero() {
			fmt.Fprintf(&b, " deleted=%s", h.names[c.Deleted])
		}
		if !c.Created.IsZero() {
			fmt.Fprintf(&b, " created=%s", h.names[c.Created])
		}
		if c.Partitions != nil {
			fmt.Fprintf(&b, " partitions=%v", c.Partitions)
		}
		b.WriteString("\n")
	}
	for _, id := range d.Brokers() {
		fmt.Fprintf(&b, "broker %d\n", id)
	}
	for _, r := range d.Configs() {
		fmt.Fprintf(&b, "config %d/%s %v\n", r.Type, r.Name, d.Image.Configs[r])
	}
	if d.ControllersChanged() {
		b.WriteString("controllers\n")
	}
	if b.Len() == 0 {
		return "nothing\n"
	}
	return b.String()
}

func nodes(t *testing.T, s string) []int32 {
	if s == "" {
		return nil
	}
	var out []int32
	for _, f := range strings.Split(s, "/") {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("node list %q: %v", s, err)
		}
		out = append(out, int32(n))
	}
	return out
}
