package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
)

// TestDataDriven runs the scripts in testdata/. Commands:
//
//	new [delete-enable=false] [internal=(a,b)] [default-partitions=N] [default-rf=N] [static=k=v,...]
//	bootstrap [node=N] [cluster=id] host=h port=p [rack=r]   (reopens the controller as node N if it differs)
//	create-topic name=(a,b) [partitions=N] [rf=N] [assign=(0:1/2,1:2/3)] [configs=k=v,k2=v] [validate-only]
//	delete-topic name=(a,b) | id=(a,b)   (id=x is the id topic x had when last seen; a random id if never seen)
//	create-partitions topic=(a,b) count=N [assign=(1/2,2/3)] [validate-only]
//	alter-configs type=topic|broker|N name=x [set=k=v,...] [delete=k,...] [append=k=v,...] [subtract=k=v,...] [replace] [validate-only]
//	alloc-pids count=N
//	image
//	restart [internal=(a,b)]   (reopens from the same log; the image must not change)
//	register node=N host=h port=p [rack=r] [incarnation=I] [prev-epoch=E]   (a broker registration; I is a small
//	                           number; E the epoch of its last clean shutdown, -1 (unclean) by default)
//	                           [dirs=(a,b)]   (log directory names; printed by name)
//	heartbeat node=N epoch=E [offline=(a,b)]   (offline log directories)
//	advance ms=N               (moves the manual clock of broker sessions; 9 s session timeout)
//	fence-expired              (fences brokers whose session expired, as the active controller's ticker)
//	shutdown node=N epoch=E    (controlled shutdown)
//	alter-partition node=N epoch=E topic=t [partition=P] [leader-epoch=L] [partition-epoch=PE] isr=1/2 [isr-epochs=0/-1]
//	                           (epochs default to the current ones; topic=? names an unknown topic)
//	partitions topic=t         (leader, epochs and ISR of every partition)
//	elect type=preferred|unclean|N [topic=t partition=(0,1)]   (every partition without topic)
//	rebalance                  (RebalanceLeaders)
//	alter-reassignments [no-rf-change]   (one partition a line: "topic partition 1/2/3", "- " for an empty target, or "cancel")
//	list-reassignments [topic=t [partition=(0,1)]]   (every partition without topic)
//	complete-reassignments     (CompleteReassignments, as the active controller's ticker)
//
// Topic ids are random: every id is printed as <id>.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var e *env
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd == "new" {
				if e != nil {
					e.close(t)
				}
				e = newEnv(t, td)
				return ""
			}
			if e == nil {
				t.Fatalf("%s: run new first", td.Pos)
			}
			return e.scrub(e.run(t, td))
		})
	})
}

type env struct {
	dir  string
	opts Options
	log  *LocalLog
	c    *Controller
	ids  map[string]metadata.UUID // topic name -> id as last seen
	all  map[metadata.UUID]bool   // every id to scrub from output
	now  time.Time                // the manual clock of broker sessions
	// pidEnd is the end of the last producer id block handed out.
	pidEnd int64
	// dirs are the log directory ids by name, and names by id.
	dirs     map[string]metadata.UUID
	dirNames map[metadata.UUID]string
}

// logDir is the log directory id named name in the scripts.
func (e *env) logDir(name string) metadata.UUID {
	if id, ok := e.dirs[name]; ok {
		return id
	}
	id := metadata.NewUUID()
	e.dirs[name], e.dirNames[id] = id, name
	return id
}

// dirList prints directory ids by their names (- for unassigned).
func (e *env) dirList(ids []metadata.UUID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		switch n, ok := e.dirNames[id]; {
		case id.IsZero():
			s[i] = "-"
		case ok:
			s[i] = n
		default:
			s[i] = id.String()
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

func newEnv(t *testing.T, td *datadriven.TestData) *env {
	overrides := map[string]string{}
	if a, ok := td.Arg("static"); ok {
		for _, kv := range pairs(t, a.SingleVal(t)) {
			overrides[kv[0]] = kv[1]
		}
	}
	static, err := config.LoadBroker("", nil, overrides)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		dir: t.TempDir(),
		opts: Options{
			NodeID: 1, Static: static, Logger: slog.New(slog.DiscardHandler),
			DefaultPartitions: 1, DefaultReplicationFactor: 1, DeleteTopicEnable: true,
			InternalTopics:       map[string]bool{},
			BrokerSessionTimeout: 9 * time.Second,
			// No feature records: the scripts' offsets stay those of
			// their own writes (TestBootstrapFeatures covers them).
			BootstrapFeatures: map[string]int16{},
		},
		now:  time.Unix(0, 0),
		ids:  map[string]metadata.UUID{},
		all:  map[metadata.UUID]bool{},
		dirs: map[string]metadata.UUID{}, dirNames: map[metadata.UUID]string{},
	}
	for _, a := range td.CmdArgs {
		switch a.Key {
		case "delete-enable":
			e.opts.DeleteTopicEnable = a.SingleVal(t) == "true"
		case "internal":
			for _, v := range a.Vals {
				e.opts.InternalTopics[v] = true
			}
		case "default-partitions":
			e.opts.DefaultPartitions = int32(atoi(t, a.SingleVal(t)))
		case "static":
		case "default-rf":
			e.opts.DefaultReplicationFactor = int16(atoi(t, a.SingleVal(t)))
		default:
			t.Fatalf("%s: unknown argument %s", td.Pos, a.Key)
		}
	}
	e.opts.Now = func() time.Time { return e.now }
	e.open(t)
	// Registered after TempDir's cleanup, so it runs before the dir goes.
	t.Cleanup(func() { e.close(t) })
	return e
}

func (e *env) open(t *testing.T) {
	t.Helper()
	l, err := OpenLocalLog(e.dir, e.opts.Logger)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(l, loader.New(loader.Options{Logger: e.opts.Logger}), e.opts)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	e.log, e.c = l, c
	e.remember()
}

func (e *env) close(t *testing.T) {
	t.Helper()
	if e.log != nil {
		if err := e.log.Close(); err != nil {
			t.Errorf("close log: %v", err)
		}
		e.log = nil
	}
}

func (e *env) remember() {
	for n, tp := range e.c.Image().Topics {
		e.ids[n] = tp.ID
		e.all[tp.ID] = true
	}
}

func (e *env) scrub(s string) string {
	for id := range e.all {
		s = strings.ReplaceAll(s, id.String(), "<id>")
	}
	for name, id := range e.dirs {
		s = strings.ReplaceAll(s, id.String(), "<dir "+name+">")
	}
	return s
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

// pairs parses k=v,k2=v2 where a part without '=' continues the previous
// value (so list values like cleanup.policy=compact,delete work).
func pairs(t *testing.T, s string) [][2]string {
	var out [][2]string
	for _, p := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			if len(out) == 0 {
				t.Fatalf("bad pair list %q", s)
			}
			out[len(out)-1][1] += "," + p
			continue
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// replicas parses 1/2/3.
func replicas(t *testing.T, s string) []int32 {
	out := []int32{}
	if s == "" {
		return out
	}
	for _, x := range strings.Split(s, "/") {
		out = append(out, int32(atoi(t, x)))
	}
	return out
}

func (e *env) run(t *testing.T, td *datadriven.TestData) string {
	switch td.Cmd {
	case "bootstrap":
		return e.bootstrap(t, td)
	case "create-topic":
		return e.createTopics(t, td)
	case "delete-topic":
		return e.deleteTopics(t, td)
	case "create-partitions":
		return e.createPartitions(t, td)
	case "alter-configs":
		return e.alterConfigs(t, td)
	case "alloc-pids":
		var count int64
		td.ScanArgs(t, "count", &count)
		start, err := e.c.AllocateProducerIDs(count)
		if err != nil {
			return errString(err) + "\n"
		}
		out := fmt.Sprintf("start=%d end=%d\n", start, start+count)
		if start < e.pidEnd {
			out += fmt.Sprintf("OVERLAP with the block ending at %d\n", e.pidEnd)
		}
		e.pidEnd = start + count
		return out
	case "image":
		return e.printImage(e.c.Image())
	case "register":
		return e.register(t, td)
	case "heartbeat":
		var node int
		var epoch int64
		td.ScanArgs(t, "node", &node)
		td.ScanArgs(t, "epoch", &epoch)
		var offline []metadata.UUID
		if a, ok := td.Arg("offline"); ok {
			for _, v := range a.Vals {
				offline = append(offline, e.logDir(v))
			}
		}
		fenced, err := e.c.BrokerHeartbeat(int32(node), epoch, offline)
		if err != nil {
			return errString(err) + "\n"
		}
		return fmt.Sprintf("fenced=%t\n", fenced)
	case "advance":
		var ms int
		td.ScanArgs(t, "ms", &ms)
		e.now = e.now.Add(time.Duration(ms) * time.Millisecond)
		return fmt.Sprintf("now=+%dms\n", e.now.Sub(time.Unix(0, 0))/time.Millisecond)
	case "fence-expired":
		nodes, err := e.c.FenceExpired()
		if err != nil {
			return errString(err) + "\n"
		}
		return fmt.Sprintf("fenced %v\n", nodes)
	case "shutdown":
		var node int
		var epoch int64
		td.ScanArgs(t, "node", &node)
		td.ScanArgs(t, "epoch", &epoch)
		return errString(e.c.BrokerShutdown(int32(node), epoch)) + "\n"
	case "alter-partition":
		return e.alterPartition(t, td)
	case "elect":
		return e.elect(t, td)
	case "rebalance":
		return errString(e.c.RebalanceLeaders()) + "\n"
	case "alter-reassignments":
		return e.alterReassignments(t, td)
	case "list-reassignments":
		return e.listReassignments(t, td)
	case "complete-reassignments":
		return errString(e.c.CompleteReassignments()) + "\n"
	case "partitions":
		var topic string
		td.ScanArgs(t, "topic", &topic)
		return e.printPartitions(e.c.Image(), topic)
	case "restart":
		before := e.printImage(e.c.Image())
		if a, ok := td.Arg("internal"); ok {
			e.opts.InternalTopics = map[string]bool{}
			for _, v := range a.Vals {
				e.opts.InternalTopics[v] = true
			}
		}
		e.close(t)
		e.open(t)
		if after := e.printImage(e.c.Image()); after != before {
			return fmt.Sprintf("image changed across restart:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		return "image unchanged\n"
	}
	t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
	return ""
}

// register node=N host=H port=P [rack=R] [incarnation=I]
func (e *env) register(t *testing.T, td *datadriven.TestData) string {
	var host string
	var port, node, inc int
	td.ScanArgs(t, "node", &node)
	td.ScanArgs(t, "host", &host)
	td.ScanArgs(t, "port", &port)
	td.MaybeScanArgs(t, "incarnation", &inc)
	prev := int64(-1)
	td.MaybeScanArgs(t, "prev-epoch", &prev)
	r := BrokerRegistration{NodeID: int32(node), Incarnation: metadata.UUID{0: byte(inc)}, Host: host, Port: int32(port), PreviousBrokerEpoch: prev}
	if a, ok := td.Arg("rack"); ok {
		rack := a.SingleVal(t)
		r.Rack = &rack
	}
	if a, ok := td.Arg("dirs"); ok {
		for _, v := range a.Vals {
			r.LogDirs = append(r.LogDirs, e.logDir(v))
		}
	}
	epoch, err := e.c.RegisterBroker(r)
	if err != nil {
		return errString(err) + "\n"
	}
	return fmt.Sprintf("broker %d epoch=%d\n", node, epoch)
}

func (e *env) bootstrap(t *testing.T, td *datadriven.TestData) string {
	var host, cluster string
	var port, node int
	td.ScanArgs(t, "host", &host)
	td.ScanArgs(t, "port", &port)
	td.MaybeScanArgs(t, "cluster", &cluster)
	if td.MaybeScanArgs(t, "node", &node) && int32(node) != e.opts.NodeID {
		e.close(t)
		e.opts.NodeID = int32(node)
		e.open(t)
	}
	var rack *string
	if a, ok := td.Arg("rack"); ok {
		r := a.SingleVal(t)
		rack = &r
	}
	id, err := e.c.Bootstrap(cluster, host, int32(port), rack)
	if err != nil {
		return errString(err) + "\n"
	}
	b := e.c.Image().Brokers[e.opts.NodeID]
	return fmt.Sprintf("cluster=%s broker %d epoch=%d\n", id, b.NodeID, b.Epoch)
}

func (e *env) createTopics(t *testing.T, td *datadriven.TestData) string {
	tmpl := CreateTopic{Partitions: -1, ReplicationFactor: -1}
	var names []string
	validateOnly := false
	for _, a := range td.CmdArgs {
		switch a.Key {
		case "name":
			names = a.Vals
		case "partitions":
			tmpl.Partitions = int32(atoi(t, a.SingleVal(t)))
		case "rf":
			tmpl.ReplicationFactor = int16(atoi(t, a.SingleVal(t)))
		case "assign":
			tmpl.Assignment = map[int32][]int32{}
			for i, v := range a.Vals {
				p, r, ok := strings.Cut(v, ":")
				if !ok {
					p, r = strconv.Itoa(i), v
				}
				tmpl.Assignment[int32(atoi(t, p))] = replicas(t, r)
			}
		case "configs":
			tmpl.Configs = map[string]*string{}
			for _, kv := range pairs(t, a.SingleVal(t)) {
				v := kv[1]
				tmpl.Configs[kv[0]] = &v
			}
		case "validate-only":
			validateOnly = true
		default:
			t.Fatalf("%s: unknown argument %s", td.Pos, a.Key)
		}
	}
	reqs := make([]CreateTopic, len(names))
	for i, n := range names {
		reqs[i] = tmpl
		reqs[i].Name = n
	}
	var b strings.Builder
	for _, r := range e.c.CreateTopics(reqs, validateOnly) {
		if r.Err != nil {
			if !r.ID.IsZero() {
				e.all[r.ID] = true
			}
			fmt.Fprintf(&b, "%s: %s\n", r.Name, errString(r.Err))
			continue
		}
		if r.ID.IsZero() {
			fmt.Fprintf(&b, "%s: ok but zero id\n", r.Name)
		}
		e.all[r.ID] = true
		fmt.Fprintf(&b, "%s: ok id=%s partitions=%d rf=%d\n", r.Name, r.ID, r.Partitions, r.ReplicationFactor)
	}
	e.remember()
	return b.String()
}

func (e *env) deleteTopics(t *testing.T, td *datadriven.TestData) string {
	var reqs []DeleteTopic
	for _, a := range td.CmdArgs {
		for _, v := range a.Vals {
			switch a.Key {
			case "name":
				reqs = append(reqs, DeleteTopic{Name: v})
			case "id":
				id, ok := e.ids[v]
				if !ok {
					id = metadata.NewUUID()
					e.all[id] = true
				}
				reqs = append(reqs, DeleteTopic{ID: id})
			default:
				t.Fatalf("%s: unknown argument %s", td.Pos, a.Key)
			}
		}
	}
	var b strings.Builder
	for _, r := range e.c.DeleteTopics(reqs) {
		fmt.Fprintf(&b, "%s id=%s: %s\n", r.Name, r.ID, errString(r.Err))
	}
	return b.String()
}

func (e *env) createPartitions(t *testing.T, td *datadriven.TestData) string {
	var tmpl CreatePartitions
	var topics []string
	validateOnly := false
	for _, a := range td.CmdArgs {
		switch a.Key {
		case "topic":
			topics = a.Vals
		case "count":
			tmpl.Count = int32(atoi(t, a.SingleVal(t)))
		case "assign":
			tmpl.Assignment = [][]int32{}
			for _, v := range a.Vals {
				tmpl.Assignment = append(tmpl.Assignment, replicas(t, v))
			}
		case "validate-only":
			validateOnly = true
		default:
			t.Fatalf("%s: unknown argument %s", td.Pos, a.Key)
		}
	}
	reqs := make([]CreatePartitions, len(topics))
	for i, n := range topics {
		reqs[i] = tmpl
		reqs[i].Topic = n
	}
	var b strings.Builder
	for i, err := range e.c.CreatePartitionsAll(reqs, validateOnly) {
		fmt.Fprintf(&b, "%s: %s\n", topics[i], errString(err))
	}
	return b.String()
}

func (e *env) alterConfigs(t *testing.T, td *datadriven.TestData) string {
	var r AlterConfigResource
	validateOnly := false
	for _, a := range td.CmdArgs {
		switch a.Key {
		case "type":
			switch v := a.SingleVal(t); v {
			case "topic":
				r.Type = metadata.ResourceTopic
			case "broker":
				r.Type = metadata.ResourceBroker
			default:
				r.Type = int8(atoi(t, v))
			}
		case "name":
			r.Name = a.SingleVal(t)
		case "set", "append", "subtract":
			op := map[string]int8{"set": OpSet, "append": OpAppend, "subtract": OpSubtract}[a.Key]
			for _, kv := range pairs(t, a.SingleVal(t)) {
				v := kv[1]
				r.Ops = append(r.Ops, ConfigOp{Name: kv[0], Op: op, Value: &v})
			}
		case "delete":
			for _, k := range strings.Split(a.SingleVal(t), ",") {
				r.Ops = append(r.Ops, ConfigOp{Name: k, Op: OpDelete})
			}
		case "op":
			// op=N,k=v: a raw operation number.
			n, kv, _ := strings.Cut(a.SingleVal(t), ",")
			k, v, _ := strings.Cut(kv, "=")
			r.Ops = append(r.Ops, ConfigOp{Name: k, Op: int8(atoi(t, n)), Value: &v})
		case "replace":
			r.Replace = true
		case "validate-only":
			validateOnly = true
		default:
			t.Fatalf("%s: unknown argument %s", td.Pos, a.Key)
		}
	}
	return errString(e.c.AlterConfigs([]AlterConfigResource{r}, validateOnly)[0]) + "\n"
}

func (e *env) printImage(im *metadata.Image) string {
	var b strings.Builder
	fmt.Fprintf(&b, "offset=%d cluster=%q next-producer-id=%d\n", im.Offset, im.ClusterID, im.NextProducerID)
	ids := make([]int32, 0, len(im.Brokers))
	for id := range im.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		br := im.Brokers[id]
		rack := ""
		if br.Rack != nil {
			rack = " rack=" + *br.Rack
		}
		fenced := ""
		if br.Fenced {
			fenced = " FENCED"
		}
		if len(br.LogDirs) > 0 {
			fenced += " dirs=" + e.dirList(br.LogDirs)
		}
		if len(br.OfflineLogDirs) > 0 {
			fenced += " offline=" + e.dirList(br.OfflineLogDirs)
		}
		fmt.Fprintf(&b, "broker %d epoch=%d %s:%d%s%s\n", br.NodeID, br.Epoch, br.Host, br.Port, rack, fenced)
	}
	for _, n := range im.SortedTopicNames() {
		tp := im.Topics[n]
		if im.TopicsByID[tp.ID] != tp {
			fmt.Fprintf(&b, "topic %s: NOT INDEXED BY ID\n", n)
		}
		fmt.Fprintf(&b, "topic %s id=<id>\n", n)
		for i, p := range tp.Partitions {
			re := ""
			if p.Reassigning() {
				re = fmt.Sprintf(" adding=%v removing=%v", p.AddingReplicas, p.RemovingReplicas)
			}
			if p.Directories != nil {
				re += " dirs=" + e.dirList(p.Directories)
			}
			fmt.Fprintf(&b, "  %d replicas=%v isr=%v leader=%d leader-epoch=%d%s\n", i, p.Replicas, p.ISR, p.Leader, p.LeaderEpoch, re)
		}
	}
	if len(im.TopicsByID) != len(im.Topics) {
		fmt.Fprintf(&b, "%d topics by name, %d by id\n", len(im.Topics), len(im.TopicsByID))
	}
	for _, r := range im.SortedConfigResources() {
		kind := map[int8]string{metadata.ResourceTopic: "topic", metadata.ResourceBroker: "broker"}[r.Type]
		fmt.Fprintf(&b, "config %s %q:", kind, r.Name)
		for _, k := range sortedKeys(im.Configs[r]) {
			fmt.Fprintf(&b, " %s=%s", k, im.Configs[r][k])
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (e *env) alterPartition(t *testing.T, td *datadriven.TestData) string {
	var node, part int
	var epoch int64
	var topic, isr string
	td.ScanArgs(t, "node", &node)
	td.ScanArgs(t, "epoch", &epoch)
	td.ScanArgs(t, "topic", &topic)
	td.MaybeScanArgs(t, "partition", &part)
	td.ScanArgs(t, "isr", &isr)
	item := AlterPartitionItem{Topic: topic, Partition: int32(part), NewISR: replicas(t, isr)}
	if tp := e.c.Image().Topics[topic]; tp != nil {
		item.TopicID = tp.ID
		if part < len(tp.Partitions) {
			p := tp.Partitions[part]
			item.LeaderEpoch, item.PartitionEpoch = p.LeaderEpoch, p.PartitionEpoch
		}
	}
	var le, pe int
	if td.MaybeScanArgs(t, "leader-epoch", &le) {
		item.LeaderEpoch = int32(le)
	}
	if td.MaybeScanArgs(t, "partition-epoch", &pe) {
		item.PartitionEpoch = int32(pe)
	}
	var epochs string
	if td.MaybeScanArgs(t, "isr-epochs", &epochs) {
		item.NewISREpochs = []int64{}
		for _, x := range strings.Split(epochs, "/") {
			item.NewISREpochs = append(item.NewISREpochs, int64(atoi(t, x)))
		}
	}
	rs, err := e.c.AlterPartition(context.Background(), AlterPartitionRequest{BrokerID: int32(node), BrokerEpoch: epoch, Partitions: []AlterPartitionItem{item}})
	if err != nil {
		return "request " + errString(err) + "\n"
	}
	r := rs[0]
	if r.Err != nil {
		return errString(r.Err) + "\n"
	}
	return fmt.Sprintf("%s-%d leader=%d leader-epoch=%d isr=%v partition-epoch=%d\n", r.Topic, r.Partition, r.Leader, r.LeaderEpoch, r.ISR, r.PartitionEpoch)
}

func (e *env) printPartitions(im *metadata.Image, topic string) string {
	tp := im.Topics[topic]
	if tp == nil {
		return "no topic " + topic + "\n"
	}
	var b strings.Builder
	for i, p := range tp.Partitions {
		elr := ""
		if len(p.ELR) > 0 {
			elr = fmt.Sprintf(" elr=%v", p.ELR)
		}
		if p.Reassigning() {
			elr += fmt.Sprintf(" adding=%v removing=%v", p.AddingReplicas, p.RemovingReplicas)
		}
		if p.Directories != nil {
			elr += " dirs=" + e.dirList(p.Directories)
		}
		fmt.Fprintf(&b, "%s-%d replicas=%v isr=%v leader=%d leader-epoch=%d partition-epoch=%d%s\n", topic, i, p.Replicas, p.ISR, p.Leader, p.LeaderEpoch, p.PartitionEpoch, elr)
	}
	return b.String()
}

func (e *env) elect(t *testing.T, td *datadriven.TestData) string {
	var typ string
	td.ScanArgs(t, "type", &typ)
	et := map[string]ElectionType{"preferred": ElectPreferred, "unclean": ElectUnclean}[typ]
	if n, err := strconv.Atoi(typ); err == nil {
		et = ElectionType(n)
	}
	var parts map[string][]int32
	if a, ok := td.Arg("topic"); ok {
		parts = map[string][]int32{a.SingleVal(t): {}}
		if pa, ok := td.Arg("partition"); ok {
			for _, v := range pa.Vals {
				parts[a.SingleVal(t)] = append(parts[a.SingleVal(t)], int32(atoi(t, v)))
			}
		}
	}
	res, err := e.c.ElectLeaders(et, parts)
	if err != nil {
		return "request " + errString(err) + "\n"
	}
	var b strings.Builder
	for _, r := range res {
		fmt.Fprintf(&b, "%s-%d: %s\n", r.Topic, r.Partition, errString(r.Err))
	}
	if len(res) == 0 {
		b.WriteString("no partitions\n")
	}
	return b.String()
}

func (e *env) alterReassignments(t *testing.T, td *datadriven.TestData) string {
	allowRF := !td.HasArg("no-rf-change")
	var reqs []Reassignment
	for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("%s: want \"topic partition replicas|cancel\", got %q", td.Pos, line)
		}
		r := Reassignment{Topic: f[0], Partition: int32(atoi(t, f[1]))}
		switch f[2] {
		case "cancel":
		case "-":
			r.Replicas = []int32{}
		default:
			r.Replicas = replicas(t, f[2])
		}
		reqs = append(reqs, r)
	}
	res, err := e.c.AlterPartitionReassignments(context.Background(), reqs, allowRF)
	if err != nil {
		return "request " + errString(err) + "\n"
	}
	var b strings.Builder
	for _, r := range res {
		fmt.Fprintf(&b, "%s-%d: %s\n", r.Topic, r.Partition, errString(r.Err))
	}
	return b.String()
}

func (e *env) listReassignments(t *testing.T, td *datadriven.TestData) string {
	var parts map[string][]int32
	if a, ok := td.Arg("topic"); ok {
		parts = map[string][]int32{a.SingleVal(t): nil}
		if pa, ok := td.Arg("partition"); ok {
			for _, v := range pa.Vals {
				parts[a.SingleVal(t)] = append(parts[a.SingleVal(t)], int32(atoi(t, v)))
			}
		}
	}
	var b strings.Builder
	for _, r := range e.c.ListPartitionReassignments(parts) {
		fmt.Fprintf(&b, "%s-%d replicas=%v adding=%v removing=%v\n", r.Topic, r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas)
	}
	if b.Len() == 0 {
		b.WriteString("none\n")
	}
	return b.String()
}
