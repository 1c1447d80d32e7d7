package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// batchCase is one line of `promref batch` input: a payload and, for
// relabel, the rules (YAML text of a list of relabel_config entries).
type batchCase struct {
	Mode         string  `json:"mode"` // "parse" or "relabel"
	Rules        string  `json:"rules"`
	Payload      *string `json:"payload"`
	PayloadB64   string  `json:"payload_b64"` // for bytes that are not UTF-8
	ContentType  string  `json:"content_type"`
	ScrapeTimeMs int64   `json:"scrape_time_ms"`
}

// cmdBatch runs many cases in one process: NDJSON cases on stdin, one line
// {"events":[...]} per case on stdout, the events being exactly what `parse`
// or `relabel` would print for it. The differential tests feed it thousands
// of generated cases at a time.
func cmdBatch(out *bufio.Writer, args []string) {
	fs := newFlags("batch")
	parseFlags(fs, args)
	dec := json.NewDecoder(bufio.NewReaderSize(os.Stdin, 1<<20))
	var buf bytes.Buffer
	enc := newEncoder(&buf)
	for n := 1; ; n++ {
		var c batchCase
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			usageExit(fmt.Sprintf("batch: case %d: %v", n, err))
		}
		var payload []byte
		switch {
		case c.Payload != nil:
			payload = []byte(*c.Payload)
		case c.PayloadB64 != "":
			b, err := base64.StdEncoding.DecodeString(c.PayloadB64)
			if err != nil {
				usageExit(fmt.Sprintf("batch: case %d: payload_b64: %v", n, err))
			}
			payload = b
		}
		ct := c.ContentType
		if ct == "" {
			ct = defaultContentType
		}
		buf.Reset()
		switch c.Mode {
		case "parse":
			parseEvents(enc, payload, ct)
		case "relabel":
			relabelEvents(enc, []byte(c.Rules), payload, ct, c.ScrapeTimeMs)
		default:
			usageExit(fmt.Sprintf("batch: case %d: unknown mode %q", n, c.Mode))
		}
		// The encoder wrote one JSON value a line: join them into an array.
		_, _ = out.WriteString(`{"events":[`)
		_, _ = out.Write(bytes.ReplaceAll(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"), []byte(",")))
		_, _ = out.WriteString("]}\n")
	}
}

// relabelEvents is `relabel` without target labels on in-memory rules.
func relabelEvents(enc *json.Encoder, rulesYAML, payload []byte, contentType string, scrapeTime int64) {
	rules, err := parseRules(rulesYAML)
	if err != nil {
		_ = enc.Encode(parseResult{"result", errPtr(fmt.Errorf("config: %w", err))})
		return
	}
	m := newMutator(rules, labels.EmptyLabels(), false)
	res := relabelResult{Kind: "result"}
	res.Error = errPtr(relabelScrape(enc, payload, contentType, m, scrapeTime, &res))
	_ = enc.Encode(res)
}

// cmdCasemap prints, for every code point that strings.ToLower or
// strings.ToUpper changes, "hex lower upper" (the results as hex code points
// joined by "+"), so a test can compare a case mapping with Go's over all of
// Unicode. The relabel actions lowercase/uppercase call these functions.
func cmdCasemap(out io.Writer, args []string) {
	fs := newFlags("casemap")
	parseFlags(fs, args)
	hex := func(s string) string {
		var parts []string
		for _, r := range s {
			parts = append(parts, fmt.Sprintf("%x", r))
		}
		return strings.Join(parts, "+")
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		lo, up := strings.ToLower(s), strings.ToUpper(s)
		if lo != s || up != s {
			fmt.Fprintf(out, "%x %s %s\n", r, hex(lo), hex(up))
		}
	}
}
