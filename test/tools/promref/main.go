// Command promref is a test oracle and benchmark peer for our exporter: it runs
// the text parser and metric relabeling of the Prometheus pinned in go.mod
// (library code, not a re-implementation) and mimics the few steps of the
// scrape loop (scrape/scrape_append_v2.go) that decide what ends up stored.
// See README.md for the Prometheus behaviours this encodes.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"go.yaml.in/yaml/v2"
)

const usage = `usage: promref <command> [flags]   (input on stdin, JSON lines on stdout)

  parse    [--content-type T]        parse exposition text as the scrape loop does
  relabel  --rules FILE [--content-type T] [--target-label name=value]...
           [--honor-labels] [--scrape-time-ms MS]
                                     parse, apply metric_relabel_configs and the
                                     scrape loop's checks (FILE: a YAML list of
                                     relabel_config entries)
  escape   --scheme underscores|dots|values|allow-utf-8 [--as-exposed] NAME...
                                     model.EscapeName for each NAME, one a line
                                     (--as-exposed: what the expfmt encoder writes,
                                     which leaves legacy-valid names alone)
  negotiate [--accept HEADER] [--openmetrics | --text-only] [--stdin]
                                     Content-Type and escaping that expfmt.Negotiate
                                     (NegotiateIncludingOpenMetrics, or
                                     NegotiateAccept(h, FmtText)) picks; --stdin:
                                     one JSON string header a line (null: none)
  batch                              many cases in one run: NDJSON cases
                                     {"mode":"parse"|"relabel","rules":YAML,
                                     "payload":TEXT|"payload_b64":B64,
                                     "content_type":T,"scrape_time_ms":MS} on
                                     stdin, one {"events":[...]} line each
  casemap                            Go's strings.ToLower/ToUpper of every code
                                     point they change: "hex lower upper"
  bench    --rules FILE --payload FILE --scrapes N [--cache] [--content-type T]
           [--output FILE]
                                     benchmark peer: parse + relabel + write text N
                                     times; run it with GOMAXPROCS=1 to compare
                                     with a single-threaded peer

T defaults to "text/plain; version=0.0.4". Exit status 0 even when Prometheus
refuses the input (the refusal is in the output), 2 on usage errors.
`

const defaultContentType = "text/plain; version=0.0.4"

func main() {
	if len(os.Args) < 2 {
		usageExit("")
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "parse":
		cmdParse(out, args)
	case "relabel":
		cmdRelabel(out, args)
	case "escape":
		cmdEscape(out, args)
	case "negotiate":
		cmdNegotiate(out, args)
	case "bench":
		cmdBench(out, args)
	case "batch":
		cmdBatch(out, args)
	case "casemap":
		cmdCasemap(out, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		usageExit("unknown command " + strconv.Quote(cmd))
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "promref:", err)
		os.Exit(1)
	}
}

func usageExit(msg string) {
	if msg == "" {
		fmt.Fprint(os.Stderr, usage)
	} else {
		fmt.Fprintf(os.Stderr, "promref: %s (see promref help)\n", msg)
	}
	os.Exit(2)
}

// newFlags returns a flag set whose errors are usage errors (exit 2).
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		usageExit(fs.Name() + ": " + err.Error())
	}
}

func readStdin() []byte {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		usageExit("reading stdin: " + err.Error())
	}
	return b
}

// newParser returns the parser the scrape loop would use for a default
// Prometheus 3 scrape config (scrape/scrape_append_v2.go:101): no type/unit
// labels, native histograms off, no NHCB conversion, no
// fallback_scrape_protocol. A nil parser means the scrape fails.
func newParser(b []byte, contentType string, st *labels.SymbolTable) (textparse.Parser, error) {
	return textparse.New(b, contentType, st, textparse.ParserOptions{IgnoreNativeHistograms: true})
}

// JSON events. Field order is fixed by the structs so outputs can be diffed.
type (
	helpEvent struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
		Help string `json:"help"`
	}
	typeEvent struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
		Type string `json:"type"`
	}
	unitEvent struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
		Unit string `json:"unit"`
	}
	seriesEvent struct {
		Kind      string      `json:"kind"`
		Labels    [][2]string `json:"labels"`
		Value     string      `json:"value"`
		Timestamp *int64      `json:"timestamp"`
		Reason    string      `json:"reason,omitempty"` // duplicate/out_of_order only
	}
	parseResult struct {
		Kind  string  `json:"kind"`
		Error *string `json:"error"`
	}
	// relabelResult adds the counts the scrape loop reports for the scrape.
	relabelResult struct {
		Kind  string  `json:"kind"`
		Error *string `json:"error"`
		// scrape_samples_scraped: series lines seen before relabeling.
		SamplesScraped int `json:"samples_scraped"`
		// scrape_samples_post_metric_relabeling: kept series, duplicates included.
		SamplesPostMetricRelabeling int `json:"samples_post_metric_relabeling"`
		// prometheus_target_scrapes_sample_duplicate_timestamp_total increase.
		SampleDuplicateTimestamp int `json:"sample_duplicate_timestamp"`
	}
)

func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // keep <, >, & readable in label values
	return enc
}

func errPtr(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

func formatValue(v float64) string {
	// FormatFloat already spells NaN, +Inf and -Inf that way.
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func labelPairs(ls labels.Labels) [][2]string {
	pairs := make([][2]string, 0, ls.Len())
	ls.Range(func(l labels.Label) { pairs = append(pairs, [2]string{l.Name, l.Value}) })
	return pairs
}

// metaEvent returns the JSON event for a HELP, TYPE or UNIT entry, or nil.
func metaEvent(p textparse.Parser, et textparse.Entry) any {
	switch et {
	case textparse.EntryHelp:
		name, help := p.Help()
		return helpEvent{"help", string(name), string(help)}
	case textparse.EntryType:
		// "untyped" comes back as model.MetricTypeUnknown ("unknown").
		name, typ := p.Type()
		return typeEvent{"type", string(name), string(typ)}
	case textparse.EntryUnit:
		name, unit := p.Unit()
		return unitEvent{"unit", string(name), string(unit)}
	}
	return nil
}

func cmdParse(out io.Writer, args []string) {
	fs := newFlags("parse")
	contentType := fs.String("content-type", defaultContentType, "Content-Type of the scrape response")
	parseFlags(fs, args)
	parseEvents(newEncoder(out), readStdin(), *contentType)
}

// parseEvents emits what the parser makes of b, then the result.
func parseEvents(enc *json.Encoder, b []byte, contentType string) {
	p, err := newParser(b, contentType, nil)
	if p == nil {
		_ = enc.Encode(parseResult{"result", errPtr(err)})
		return
	}
	var lset labels.Labels
	for {
		et, err := p.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			_ = enc.Encode(parseResult{"result", errPtr(err)})
			return
		}
		switch et {
		case textparse.EntryComment:
		case textparse.EntrySeries:
			_, ts, v := p.Series()
			p.Labels(&lset)
			_ = enc.Encode(seriesEvent{Kind: "series", Labels: labelPairs(lset), Value: formatValue(v), Timestamp: ts})
		case textparse.EntryHistogram:
			// Only protobuf or OpenMetrics 2 carry native histograms; not needed here.
			p.Labels(&lset)
			_ = enc.Encode(seriesEvent{Kind: "histogram", Labels: labelPairs(lset), Value: "histogram"})
		default:
			_ = enc.Encode(metaEvent(p, et))
		}
	}
}

// loadRules reads metric_relabel_configs the way Prometheus loads its config:
// yaml.UnmarshalStrict (config/config.go:81), so Config.UnmarshalYAML applies
// the defaults, then the null-rule check and Validate with the scrape config's
// name validation scheme, UTF-8 by default (config/config.go:925, :1080).
func loadRules(path string) ([]*relabel.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		usageExit("reading rules: " + err.Error())
	}
	return parseRules(b)
}

// parseRules is loadRules on the YAML text itself.
func parseRules(b []byte) ([]*relabel.Config, error) {
	var rules []*relabel.Config
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		return nil, err
	}
	for _, r := range rules {
		if r == nil {
			return nil, errors.New("empty or null metric relabeling rule in scrape config")
		}
		if err := r.Validate(model.UTF8Validation); err != nil {
			return nil, err
		}
	}
	return rules, nil
}

// mutator applies target labels and metric relabeling like mutateSampleLabels
// (scrape/scrape.go:650), reusing one labels.Builder.
type mutator struct {
	lb     *labels.Builder
	target labels.Labels
	honor  bool
	rules  []*relabel.Config
}

func newMutator(rules []*relabel.Config, target labels.Labels, honor bool) *mutator {
	return &mutator{lb: labels.NewBuilder(labels.EmptyLabels()), target: target, honor: honor, rules: rules}
}

// mutate returns the final label set, empty when a rule dropped the series.
// Empty label values disappear here: Builder.Reset deletes base labels with
// "" values and Builder.Set(name, "") deletes the label.
func (m *mutator) mutate(lset labels.Labels) labels.Labels {
	lb := m.lb
	lb.Reset(lset)
	// Target.LabelsRange skips "__"-prefixed labels (scrape/target.go:207).
	var conflicts []labels.Label
	m.target.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, model.ReservedLabelPrefix) {
			return
		}
		if m.honor {
			if !lset.Has(l.Name) {
				lb.Set(l.Name, l.Value)
			}
			return
		}
		if v := lset.Get(l.Name); v != "" {
			conflicts = append(conflicts, labels.Label{Name: l.Name, Value: v})
		}
		lb.Set(l.Name, l.Value)
	})
	// honor_labels: false keeps an exposed label that clashes with a target
	// label as exported_<name>, shortest names first
	// (resolveConflictingExposedLabels, scrape/scrape.go:682).
	slices.SortStableFunc(conflicts, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
	for _, l := range conflicts {
		name := l.Name
		for {
			name = model.ExportedLabelPrefix + name
			if lb.Get(name) == "" {
				lb.Set(name, l.Value)
				break
			}
		}
	}
	if !relabel.ProcessBuilder(lb, m.rules...) {
		return labels.EmptyLabels()
	}
	return lb.Labels()
}

// checkSeries is the scrape loop's check of a relabeled series; an error
// fails the whole scrape (scrape/scrape_append_v2.go:221-236).
func checkSeries(lset labels.Labels) error {
	if !lset.Has(model.MetricNameLabel) {
		return fmt.Errorf("missing metric name (%s label)", model.MetricNameLabel)
	}
	if !lset.IsValid(model.UTF8Validation) {
		return fmt.Errorf("invalid metric name or label names: %s", lset.String())
	}
	return nil
}

// targetLabels collects --target-label name=value flags.
type targetLabels struct{ b labels.ScratchBuilder }

func (t *targetLabels) String() string { return "" }
func (t *targetLabels) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want name=value")
	}
	t.b.Add(name, value)
	return nil
}

func cmdRelabel(out io.Writer, args []string) {
	fs := newFlags("relabel")
	rulesPath := fs.String("rules", "", "YAML list of relabel_config entries")
	contentType := fs.String("content-type", defaultContentType, "Content-Type of the scrape response")
	var target targetLabels
	fs.Var(&target, "target-label", "target label added before relabeling, e.g. job=coder (repeatable)")
	honor := fs.Bool("honor-labels", false, "honor_labels: true")
	scrapeTime := fs.Int64("scrape-time-ms", 0, "scrape timestamp for series without one (only orders them against explicit timestamps)")
	parseFlags(fs, args)
	if *rulesPath == "" {
		usageExit("relabel: --rules is required")
	}
	enc := newEncoder(out)
	rules, err := loadRules(*rulesPath)
	if err != nil {
		_ = enc.Encode(parseResult{"result", errPtr(fmt.Errorf("config: %w", err))})
		return
	}
	target.b.Sort()
	m := newMutator(rules, target.b.Labels(), *honor)
	res := relabelResult{Kind: "result"}
	res.Error = errPtr(relabelScrape(enc, readStdin(), *contentType, m, *scrapeTime, &res))
	_ = enc.Encode(res)
}

// relabelScrape walks one scrape like scrapeLoopAppenderV2.append
// (scrape/scrape_append_v2.go:91) into an empty TSDB and emits what is
// stored, dropped as duplicate, or the error that fails the scrape. On an
// error Prometheus rolls the whole scrape back (scrape/scrape.go:1621): the
// series emitted before it are not stored, up is 0 and the target's series
// get stale markers.
func relabelScrape(enc *json.Encoder, b []byte, contentType string, m *mutator, scrapeTime int64, res *relabelResult) error {
	p, err := newParser(b, contentType, nil)
	if p == nil {
		return err
	}
	var (
		// scrapeCache, keyed by the raw series text from Series().
		cached  = map[string]labels.Labels{}
		dropped = map[string]bool{}
		// newest sample timestamp per stored label set, as the TSDB head
		// series would hold it once this scrape is committed.
		maxT = map[string]int64{}
		lset labels.Labels
	)
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if et != textparse.EntrySeries {
			if ev := metaEvent(p, et); ev != nil {
				_ = enc.Encode(ev)
			}
			continue
		}
		res.SamplesScraped++
		met, ts, v := p.Series()
		if dropped[string(met)] {
			continue
		}
		final, seen := cached[string(met)]
		if !seen {
			p.Labels(&lset)
			final = m.mutate(lset)
			if final.IsEmpty() {
				dropped[string(met)] = true
				continue
			}
			if err := checkSeries(final); err != nil {
				return err
			}
			cached[string(met)] = final
		}
		ev := seriesEvent{Kind: "series", Labels: labelPairs(final), Value: formatValue(v), Timestamp: ts}
		if seen && ts == nil {
			// The same series text twice without timestamps: the scrape loop
			// refuses the later one with ErrDuplicateSampleForTimestamp and
			// counts it (scrape/scrape_append_v2.go:244, scrape.go:2179).
			res.SampleDuplicateTimestamp++
			res.SamplesPostMetricRelabeling++ // counted all the same
			ev.Kind, ev.Reason = "duplicate", "same_series_text"
			_ = enc.Encode(ev)
			continue
		}
		// The TSDB head refuses repeated label names and fails the scrape
		// (tsdb/head_append.go:570, checkAddError's default case).
		if name, dup := final.HasDuplicateLabelNames(); dup {
			return fmt.Errorf(`label name "%s" is not unique: invalid sample`, name)
		}
		// From here on the append succeeds, so the sample is counted even if
		// the commit below drops it.
		res.SamplesPostMetricRelabeling++
		// Different series text, same labels: both appends succeed, then the
		// head's commit keeps the first sample for a timestamp and silently
		// drops the rest; an older timestamp is out of order
		// (tsdb/head_append.go:695, :1376).
		t := scrapeTime
		if ts != nil {
			t = *ts
		}
		key := final.String()
		if prev, ok := maxT[key]; ok && t <= prev {
			ev.Kind, ev.Reason = "duplicate", "same_labels"
			if t < prev {
				ev.Kind, ev.Reason = "out_of_order", "older_timestamp"
			}
			_ = enc.Encode(ev)
			continue
		}
		maxT[key] = t
		_ = enc.Encode(ev)
	}
}

var escapingSchemes = map[string]model.EscapingScheme{
	model.AllowUTF8:         model.NoEscaping,
	model.EscapeUnderscores: model.UnderscoreEscaping,
	model.EscapeDots:        model.DotsEscaping,
	model.EscapeValues:      model.ValueEncodingEscaping,
}

func cmdEscape(out io.Writer, args []string) {
	fs := newFlags("escape")
	schemeName := fs.String("scheme", "", "underscores, dots, values or allow-utf-8")
	asExposed := fs.Bool("as-exposed", false, "leave legacy-valid names alone, as model.EscapeMetricFamily does")
	parseFlags(fs, args)
	scheme, ok := escapingSchemes[*schemeName]
	if !ok {
		usageExit("escape: unknown --scheme " + strconv.Quote(*schemeName))
	}
	for _, name := range fs.Args() {
		// EscapeMetricFamily (common model/metric.go:343, :365, :375) only
		// escapes names that fail the legacy metric-name check; EscapeName
		// alone also rewrites "_" for the dots scheme.
		if !*asExposed || !model.IsValidLegacyMetricName(name) {
			name = model.EscapeName(name, scheme)
		}
		fmt.Fprintln(out, name)
	}
}

var formatTypes = map[expfmt.FormatType]string{
	expfmt.TypeUnknown:      "unknown",
	expfmt.TypeProtoCompact: "proto-compact",
	expfmt.TypeProtoDelim:   "proto-delimited",
	expfmt.TypeProtoText:    "proto-text",
	expfmt.TypeTextPlain:    "text",
	expfmt.TypeOpenMetrics:  "openmetrics",
}

func cmdNegotiate(out io.Writer, args []string) {
	fs := newFlags("negotiate")
	accept := fs.String("accept", "", "Accept header sent by the client (empty: none)")
	openMetrics := fs.Bool("openmetrics", false, "use NegotiateIncludingOpenMetrics (client_golang's EnableOpenMetrics)")
	textOnly := fs.Bool("text-only", false, "NegotiateAccept(h, FmtText): a server that only offers the text format")
	fromStdin := fs.Bool("stdin", false, "read Accept headers from stdin, one JSON string a line (null: none), one answer each")
	parseFlags(fs, args)
	negotiate := func(accept *string) expfmt.Format {
		h := http.Header{}
		if accept != nil {
			h.Set("Accept", *accept)
		}
		switch {
		case *textOnly:
			return expfmt.NegotiateAccept(h, expfmt.FmtText)
		case *openMetrics:
			return expfmt.NegotiateIncludingOpenMetrics(h) //nolint:staticcheck
		default:
			// Negotiate is deprecated in favour of NegotiateAccept, but it is
			// what client_golang's promhttp handler calls.
			return expfmt.Negotiate(h) //nolint:staticcheck
		}
	}
	enc := newEncoder(out)
	emit := func(f expfmt.Format) {
		_ = enc.Encode(struct {
			ContentType string `json:"content_type"`
			Format      string `json:"format"`
			Escaping    string `json:"escaping"`
		}{string(f), formatTypes[f.FormatType()], f.ToEscapingScheme().String()})
	}
	if !*fromStdin {
		if *accept == "" {
			emit(negotiate(nil))
		} else {
			emit(negotiate(accept))
		}
		return
	}
	dec := json.NewDecoder(os.Stdin)
	for {
		var a *string
		if err := dec.Decode(&a); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			usageExit("negotiate: " + err.Error())
		}
		emit(negotiate(a))
	}
}

// cacheEntry is the bench's scrapeCache entry: the relabel outcome of one raw
// series text, as series text ready to write, or dropped.
type cacheEntry struct {
	text     []byte
	dropped  bool
	lastIter int
}

func cmdBench(out io.Writer, args []string) {
	fs := newFlags("bench")
	rulesPath := fs.String("rules", "", "YAML list of relabel_config entries")
	payloadPath := fs.String("payload", "", "exposition text to scrape")
	scrapes := fs.Int("scrapes", 0, "number of scrapes")
	useCache := fs.Bool("cache", false, "cache relabel outcomes by raw series text across scrapes (scrapeCache)")
	contentType := fs.String("content-type", defaultContentType, "Content-Type of the payload")
	outputPath := fs.String("output", "", "write the last scrape's text here, to check it")
	parseFlags(fs, args)
	if *rulesPath == "" || *payloadPath == "" || *scrapes < 1 {
		usageExit("bench: --rules, --payload and --scrapes N (N >= 1) are required")
	}
	payload, err := os.ReadFile(*payloadPath)
	if err != nil {
		usageExit("reading payload: " + err.Error())
	}
	enc := newEncoder(out)
	rules, err := loadRules(*rulesPath)
	if err != nil {
		_ = enc.Encode(parseResult{"result", errPtr(fmt.Errorf("config: %w", err))})
		return
	}

	var (
		m         = newMutator(rules, labels.EmptyLabels(), false)
		st        = labels.NewSymbolTable() // one per scrape pool, kept across scrapes
		cache     = map[string]*cacheEntry{}
		buf       []byte // reused output buffer
		lset      labels.Labels
		in, kept  int
		firstMs   float64
		scrapeErr error
	)
	ru0 := rusage()
	start := time.Now()
	for iter := 0; iter < *scrapes; iter++ {
		t0 := time.Now()
		buf = buf[:0]
		in, kept = 0, 0
		p, err := newParser(payload, *contentType, st)
		if p == nil {
			scrapeErr = err
			break
		}
		scrapeErr = nil
	series:
		for {
			et, err := p.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					scrapeErr = err
				}
				break
			}
			switch et {
			case textparse.EntryHelp:
				name, help := p.Help()
				buf = append(buf, "# HELP "...)
				buf = appendName(buf, string(name))
				buf = append(buf, ' ')
				buf = appendEscaped(buf, string(help), false)
				buf = append(buf, '\n')
				continue
			case textparse.EntryType:
				name, typ := p.Type()
				if typ == model.MetricTypeUnknown {
					typ = "untyped"
				}
				buf = append(buf, "# TYPE "...)
				buf = appendName(buf, string(name))
				buf = append(buf, ' ')
				buf = append(buf, typ...)
				buf = append(buf, '\n')
				continue
			case textparse.EntrySeries:
			default:
				continue
			}
			in++
			met, ts, v := p.Series()
			var text []byte
			if *useCache {
				// A map lookup with string(met) does not allocate.
				if e, ok := cache[string(met)]; ok {
					e.lastIter = iter
					if e.dropped {
						continue
					}
					text = e.text
				}
			}
			if text == nil {
				p.Labels(&lset)
				final := m.mutate(lset)
				if final.IsEmpty() {
					if *useCache {
						cache[string(met)] = &cacheEntry{dropped: true, lastIter: iter}
					}
					continue
				}
				if err := checkSeries(final); err != nil {
					scrapeErr = err
					break series
				}
				n := len(buf)
				buf = appendSeries(buf, final)
				if *useCache {
					cache[string(met)] = &cacheEntry{text: append([]byte(nil), buf[n:]...), lastIter: iter}
				}
			} else {
				buf = append(buf, text...)
			}
			buf = append(buf, ' ')
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
			if ts != nil {
				buf = append(buf, ' ')
				buf = strconv.AppendInt(buf, *ts, 10)
			}
			buf = append(buf, '\n')
			kept++
		}
		// Like scrapeCache.iterDone(true): forget series not seen this scrape.
		for k, e := range cache {
			if e.lastIter != iter {
				delete(cache, k)
			}
		}
		if iter == 0 {
			firstMs = float64(time.Since(t0).Microseconds()) / 1000
		}
	}
	wall := time.Since(start).Seconds()
	ru1 := rusage()
	if *outputPath != "" {
		if err := os.WriteFile(*outputPath, buf, 0o644); err != nil {
			usageExit("writing output: " + err.Error())
		}
	}
	_ = enc.Encode(struct {
		Scrapes     int     `json:"scrapes"`
		SeriesIn    int     `json:"series_in"`
		SeriesOut   int     `json:"series_out"`
		BytesOut    int     `json:"bytes_out"`
		FirstScrape float64 `json:"first_scrape_ms"`
		CPUSeconds  float64 `json:"cpu_seconds"`
		WallSeconds float64 `json:"wall_seconds"`
		MaxRSSBytes int64   `json:"max_rss_bytes"`
		Error       *string `json:"error"`
	}{*scrapes, in, kept, len(buf), firstMs, cpuSeconds(ru1) - cpuSeconds(ru0), wall, ru1.Maxrss * 1024, errPtr(scrapeErr)})
}

func rusage() syscall.Rusage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}

func cpuSeconds(ru syscall.Rusage) float64 {
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// appendSeries writes name{labels} the way expfmt's text encoder does with
// escaping=allow-utf-8 (common expfmt/text_create.go:354): a metric name that
// is not legacy-valid goes quoted inside the braces. Unlike expfmt, label
// names are quoted by the legacy label-name rule: expfmt checks them with the
// metric-name rule and writes c:d="1" unquoted, which Prometheus's own parser
// refuses ("expected equal, got ':'").
func appendSeries(b []byte, ls labels.Labels) []byte {
	name := ls.Get(model.MetricNameLabel)
	sep := byte('{')
	closeBrace := false
	if !model.LegacyValidation.IsValidMetricName(name) {
		b = append(b, '{')
		sep, closeBrace = ',', true
	}
	b = appendName(b, name)
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		b = append(b, sep)
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = append(b, '"')
			b = appendEscaped(b, l.Name, true)
			b = append(b, '"')
		}
		b = append(b, '=', '"')
		b = appendEscaped(b, l.Value, true)
		b = append(b, '"')
		sep, closeBrace = ',', true
	})
	if closeBrace {
		b = append(b, '}')
	}
	return b
}

func appendName(b []byte, name string) []byte {
	if model.LegacyValidation.IsValidMetricName(name) {
		return append(b, name...)
	}
	b = append(b, '"')
	b = appendEscaped(b, name, true)
	return append(b, '"')
}

// appendEscaped escapes \ and newline, and " when quoted (text_create.go:466).
func appendEscaped(b []byte, s string, quoted bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quoted:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}
