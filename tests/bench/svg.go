package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Plots are plain SVG written here, so the report needs no plotting library.

const (
	colorOurs     = "#d9480f"
	colorOfficial = "#1c7ed6"
	colorBetter   = "#2b8a3e"
	colorWorse    = "#c92a2a"
	fontAttrs     = `font-family="sans-serif" font-size="12"`
)

type svg struct{ b strings.Builder }

func newSVG(w, h int, title string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", w, h, w, h)
	fmt.Fprintf(&s.b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	s.text(float64(w)/2, 20, "middle", `font-weight="bold"`, title)
	return s
}

func (s *svg) text(x, y float64, anchor, extra, t string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s %s>%s</text>`+"\n", x, y, anchor, fontAttrs, extra, html.EscapeString(t))
}

func (s *svg) line(x1, y1, x2, y2 float64, stroke, extra string) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" %s/>`+"\n", x1, y1, x2, y2, stroke, extra)
}

func (s *svg) rect(x, y, w, h float64, fill string) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, fill)
}

func (s *svg) legend(x, y float64, entries [][2]string) {
	for i, e := range entries {
		yy := y + float64(i)*16
		s.rect(x, yy-9, 10, 10, e[1])
		s.text(x+14, yy, "start", "", e[0])
	}
}

func (s *svg) bytes() []byte {
	s.b.WriteString("</svg>\n")
	return []byte(s.b.String())
}

// logScale maps v in [lo, hi] (log10) onto [a, b].
func logScale(v, lo, hi, a, b float64) float64 {
	v = math.Min(math.Max(v, lo), hi)
	return a + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(b-a)
}

// higherIsBetter lists the metrics where a ratio above 1 favours ours.
var higherIsBetter = map[string]bool{"throughput_c64": true}

// ratioPlot: ours/official for every metric on a log axis around 1, with the targets marked.
func ratioPlot(s Summary) []byte {
	const left, right, top, row = 330.0, 700.0, 50.0, 26.0
	lo, hi := 0.01, 10.0
	h := int(top + row*float64(len(metricOrder)) + 60)
	p := newSVG(760, h, "ours / official (log scale; left of 1 = smaller)")
	bottom := top + row*float64(len(metricOrder))
	for _, tick := range []float64{0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10} {
		x := logScale(tick, lo, hi, left, right)
		stroke := "#ddd"
		if tick == 1 {
			stroke = "#333"
		}
		p.line(x, top-6, x, bottom, stroke, "")
		p.text(x, bottom+16, "middle", "", fmt.Sprintf("%g", tick))
	}
	targets := map[string]float64{"cold_start_ms": 0.2, "idle_rss_10_mounts": 0.25, "p50_latency_50ms_c1": 0.6, "throughput_c64": 2,
		"revoke_p50_50ms_c1": 0.3, "revoke_p99_50ms_c64": 0.3, "e2e_p50_0ms_c1": 1.25, "e2e_p50_50ms_c1": 0.52, "rss_1000_mounts": 0.15}
	one := logScale(1, lo, hi, left, right)
	for i, k := range metricOrder {
		y := top + row*float64(i)
		r := s.Metrics[k].Ratio
		p.text(left-8, y+row/2+4, "end", "", metricLabels[k])
		if math.IsNaN(r) {
			p.text(one+6, y+row/2+4, "start", "", "n/a")
			continue
		}
		x := logScale(r, lo, hi, left, right)
		better := r < 1
		if higherIsBetter[k] {
			better = r > 1
		}
		color := colorWorse
		if better || r == 1 {
			color = colorBetter
		}
		p.rect(math.Min(x, one), y+5, math.Max(math.Abs(x-one), 1), row-10, color)
		label := fmt.Sprintf("%.3g", r)
		if k == "revocation_storm_s" && !s.Drained["official"] {
			label = "≤ " + label + " (official not drained)"
		}
		if x < one {
			p.text(x-4, y+row/2+4, "end", "", label)
		} else {
			p.text(x+4, y+row/2+4, "start", "", label)
		}
		if t, ok := targets[k]; ok {
			tx := logScale(t, lo, hi, left, right)
			p.line(tx, y+2, tx, y+row-2, "black", `stroke-width="2" stroke-dasharray="3,2"`)
		}
	}
	p.legend(left, bottom+36, [][2]string{{"ours better", colorBetter}, {"ours worse", colorWorse}})
	p.text(left+120, bottom+36, "start", "", "dashed: target")
	return p.bytes()
}

// latencyPlot: p50 and p99 of every creds scenario for both plugins, log axis.
func latencyPlot(res *Results, s Summary) []byte {
	scen := s.Details["scenarios"].(map[string]any)
	var groups []barGroup
	for _, sc := range res.Plan.Scenarios {
		e := scen[sc.Key()].(map[string]any)
		groups = append(groups, barGroup{fmt.Sprintf("+%d ms", sc.LatencyMS), callers(sc.Concurrency),
			e["ours"].(map[string]float64), e["official"].(map[string]float64)})
	}
	return barPlot("creds latency per scenario (ms, log scale)", "official", groups)
}

// revokeE2EPlot: p50 and p99 of the timed revocations (ours vs the official plugin) and of
// the end-to-end reads through Vault (ours vs Vault's builtin engine), log axis.
func revokeE2EPlot(res *Results, s Summary) []byte {
	var groups []barGroup
	if rev, _ := s.Details["revocations"].(map[string]any); rev != nil {
		for _, sc := range res.Plan.Revocations {
			if e, _ := rev[sc.Key()].(map[string]any); e != nil {
				groups = append(groups, barGroup{fmt.Sprintf("revoke +%d ms", sc.LatencyMS), callers(sc.Concurrency),
					e["ours"].(map[string]float64), e["official"].(map[string]float64)})
			}
		}
	}
	if e2e, _ := s.Details["e2e"].(map[string]any); e2e != nil {
		for _, sc := range res.Plan.E2E {
			if e, _ := e2e[sc.Key()].(map[string]any); e != nil {
				groups = append(groups, barGroup{fmt.Sprintf("Vault +%d ms", sc.LatencyMS), callers(sc.Concurrency),
					e["ours"].(map[string]float64), e["builtin"].(map[string]float64)})
			}
		}
	}
	return barPlot("revocation (official plugin) and vault read through Vault (builtin engine): ms, log scale",
		"official / builtin", groups)
}

// barGroup is one scenario's p50 and p99 for both sides.
type barGroup struct {
	label, sublabel string
	ours, official  map[string]float64
}

// barPlot draws p50 and p99 bars of both sides per group on a log axis.
func barPlot(title, officialName string, groups []barGroup) []byte {
	const left, top, plotH, groupW = 70.0, 50.0, 300.0, 110.0
	maxV, minV := 1.0, math.Inf(1)
	for _, g := range groups {
		for _, m := range []map[string]float64{g.ours, g.official} {
			for _, k := range []string{"p50_ms", "p99_ms"} {
				if v, ok := m[k]; ok && !math.IsNaN(v) && v > 0 {
					maxV, minV = math.Max(maxV, v), math.Min(minV, v)
				}
			}
		}
	}
	lo := math.Pow(10, math.Floor(math.Log10(math.Max(minV, 0.1))))
	hi := math.Pow(10, math.Ceil(math.Log10(maxV)))
	w := int(math.Max(left+groupW*float64(len(groups))+40, 560))
	p := newSVG(w, int(top+plotH+90), title)
	bottom := top + plotH
	for d := lo; d <= hi*1.0001; d *= 10 {
		for _, mul := range []float64{1, 2, 5} {
			v := d * mul
			if v > hi*1.0001 {
				break
			}
			y := logScale(v, lo, hi, bottom, top)
			p.line(left, y, float64(w)-30, y, "#e5e5e5", "")
			p.text(left-6, y+4, "end", "", fmt.Sprintf("%g", v))
		}
	}
	for i, g := range groups {
		x0 := left + groupW*float64(i) + 12
		bars := []struct {
			m              map[string]float64
			key            string
			color, opacity string
		}{
			{g.ours, "p50_ms", colorOurs, "1"}, {g.ours, "p99_ms", colorOurs, "0.45"},
			{g.official, "p50_ms", colorOfficial, "1"}, {g.official, "p99_ms", colorOfficial, "0.45"},
		}
		for j, bar := range bars {
			v, ok := bar.m[bar.key]
			if !ok || math.IsNaN(v) || v <= 0 {
				continue
			}
			y := logScale(v, lo, hi, bottom, top)
			fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="20" height="%.1f" fill="%s" fill-opacity="%s"/>`+"\n",
				x0+float64(j)*22, y, bottom-y, bar.color, bar.opacity)
		}
		p.text(x0+44, bottom+16, "middle", "", g.label)
		p.text(x0+44, bottom+30, "middle", "", g.sublabel)
	}
	p.line(left, bottom, float64(w)-30, bottom, "#333", "")
	p.legend(left, bottom+52, [][2]string{{"ours p50 (light: p99)", colorOurs}})
	p.legend(left+220, bottom+52, [][2]string{{officialName + " p50 (light: p99)", colorOfficial}})
	return p.bytes()
}

// mountsPlot: RSS of one process with 1 mount, then 1,000 mounts set up, then after one
// issuance on each, for both plugins (MiB, linear axis).
func mountsPlot(s Summary) []byte {
	const left, top, plotH, groupW = 70.0, 50.0, 260.0, 150.0
	many, _ := s.Details["many_mounts"].(map[string]any)
	o, _ := many["ours"].(map[string]float64)
	f, _ := many["official"].(map[string]float64)
	keys := []struct{ key, label string }{
		{"rss_1_mount_bytes", "1 mount"}, {"rss_after_setup_bytes", "all set up"}, {"rss_after_issue_bytes", "1 issuance each"},
	}
	maxV := 1.0
	for _, m := range []map[string]float64{o, f} {
		for _, k := range keys {
			maxV = math.Max(maxV, m[k.key]/(1<<20))
		}
	}
	step := math.Pow(10, math.Floor(math.Log10(maxV)))
	if maxV/step < 4 {
		step /= 2
	}
	hi := math.Ceil(maxV/step) * step
	w := int(left + groupW*float64(len(keys)) + 40)
	p := newSVG(w, int(top+plotH+80), fmt.Sprintf("RSS of one plugin process, %.0f multiplexed mounts (MiB)", o["mounts"]))
	bottom := top + plotH
	for v := 0.0; v <= hi*1.0001; v += step {
		y := bottom - v/hi*plotH
		p.line(left, y, float64(w)-30, y, "#e5e5e5", "")
		p.text(left-6, y+4, "end", "", fmt.Sprintf("%g", v))
	}
	for i, k := range keys {
		x0 := left + groupW*float64(i) + 30
		for j, side := range []struct {
			m     map[string]float64
			color string
		}{{o, colorOurs}, {f, colorOfficial}} {
			v := side.m[k.key] / (1 << 20)
			h := v / hi * plotH
			p.rect(x0+float64(j)*42, bottom-h, 38, h, side.color)
			p.text(x0+float64(j)*42+19, bottom-h-4, "middle", "", fmt.Sprintf("%.0f", v))
		}
		p.text(x0+40, bottom+16, "middle", "", k.label)
	}
	p.line(left, bottom, float64(w)-30, bottom, "#333", "")
	p.legend(left, bottom+40, [][2]string{{"ours", colorOurs}})
	p.legend(left+120, bottom+40, [][2]string{{"official", colorOfficial}})
	return p.bytes()
}

// stormPlot: leases revoked over time during the storm, for both plugins.
func stormPlot(res *Results) []byte {
	const left, top, plotW, plotH = 70.0, 50.0, 600.0, 280.0
	o, f := res.Sides["ours"].Storm, res.Sides["official"].Storm
	maxT := math.Max(math.Max(o.DrainS, f.DrainS)*1.05, 0.01)
	n := float64(max(o.Leases, f.Leases, 1))
	p := newSVG(int(left+plotW+40), int(top+plotH+80), fmt.Sprintf("revocation storm: %d leases revoked at once under Atlas rate limits", int(n)))
	bottom := top + plotH
	step := math.Pow(10, math.Floor(math.Log10(maxT)))
	if maxT/step < 4 {
		step /= 2
	}
	for i := 0; float64(i)*step <= maxT*1.0001; i++ {
		t := float64(i) * step
		x := left + t/maxT*plotW
		p.line(x, top, x, bottom, "#eee", "")
		p.text(x, bottom+16, "middle", "", fmt.Sprintf("%.3g s", t))
	}
	for _, frac := range []float64{0, 0.25, 0.5, 0.75, 1} {
		y := bottom - frac*plotH
		p.line(left, y, left+plotW, y, "#eee", "")
		p.text(left-6, y+4, "end", "", fmt.Sprintf("%.0f", frac*n))
	}
	for _, st := range []struct {
		r     *StormResult
		color string
	}{{o, colorOurs}, {f, colorOfficial}} {
		var pts strings.Builder
		fmt.Fprintf(&pts, "%.1f,%.1f", left, bottom)
		for i, t := range st.r.RevokedAtS {
			x := left + math.Min(t/maxT, 1)*plotW
			prevY := bottom - float64(i)/n*plotH
			y := bottom - float64(i+1)/n*plotH
			fmt.Fprintf(&pts, " %.1f,%.1f %.1f,%.1f", x, prevY, x, y)
		}
		end := st.r.DrainS
		fmt.Fprintf(&pts, " %.1f,%.1f", left+math.Min(end/maxT, 1)*plotW, bottom-float64(len(st.r.RevokedAtS))/n*plotH)
		fmt.Fprintf(&p.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", pts.String(), st.color)
		if !st.r.Drained {
			p.text(left+math.Min(end/maxT, 1)*plotW-4, bottom-float64(len(st.r.RevokedAtS))/n*plotH-8, "end",
				fmt.Sprintf(`fill="%s"`, st.color), fmt.Sprintf("%d not revoked when the bound (%.0f s) passed", st.r.Unrevoked, st.r.BoundS))
		}
	}
	p.line(left, bottom, left+plotW, bottom, "#333", "")
	p.text(left+plotW/2, bottom+34, "middle", "", "seconds since the storm began (Vault-style retries: 20 s, 40 s, 80 s … ± 50 %)")
	p.legend(left, bottom+56, [][2]string{{"ours", colorOurs}})
	p.legend(left+100, bottom+56, [][2]string{{"official", colorOfficial}})
	return p.bytes()
}

func callers(n int) string {
	if n == 1 {
		return "1 caller"
	}
	return fmt.Sprintf("%d callers", n)
}
