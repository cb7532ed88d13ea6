package catalog

import (
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/openfsb/fsb/engine/flow"
)

// The diagram is laid out in two passes over a tree of blocks: measure
// (each block's width and height from its text and children), then draw at
// a position. Colours are presentation attributes, not CSS, so the SVG looks
// the same inline in a page under a strict Content-Security-Policy and
// opened on its own.

const (
	charW    = 7.0  // average advance of a 12px sans-serif character
	lineH    = 16.0 // one text line
	padX     = 12.0
	padY     = 8.0
	vGap     = 26.0 // the arrow between two steps
	hGap     = 18.0 // between parallel branches
	margin   = 12.0
	maxChars = 46
	minBoxW  = 150.0
	ink      = "#1b1b1b"
	muted    = "#4a4a4a"
)

// Diagram draws a compiled flow as SVG: the request, every step in order,
// parallel branches side by side, switch cases with their conditions,
// foreach and group steps as frames, conditional steps with their
// condition, and the answer.
func Diagram(steps []flow.Outline, method, path string, status int) string {
	if status == 0 {
		status = 200
	}
	body := []block{&pill{text: method + " " + path, fill: "#e8eef7"}}
	body = append(body, blocks(steps)...)
	body = append(body, &pill{text: "answer " + strconv.Itoa(status) + " (application/json)", fill: "#e6f2e6"})
	root := &seq{items: body}
	w, h := root.size()
	var b strings.Builder
	W, H := w+2*margin, h+2*margin
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="fd-title fd-desc" width="%s" height="%s" viewBox="0 0 %s %s" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif" font-size="12">`+"\n",
		num(W), num(H), num(W), num(H))
	fmt.Fprintf(&b, "<title id=\"fd-title\">Flow diagram: %s</title>\n", esc(method+" "+path))
	fmt.Fprintf(&b, "<desc id=\"fd-desc\">%s</desc>\n", esc(describeSteps(steps)))
	b.WriteString(`<defs><marker id="fd-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="` + ink + `"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect width="%s" height="%s" fill="#ffffff"/>`+"\n", num(W), num(H))
	root.draw(&b, margin, margin, w)
	b.WriteString("</svg>\n")
	return b.String()
}

// block is one laid-out element; draw places it centred in width w at (x, y).
type block interface {
	size() (w, h float64)
	draw(b *strings.Builder, x, y, w float64)
}

func blocks(steps []flow.Outline) []block {
	out := make([]block, 0, len(steps))
	for _, s := range steps {
		out = append(out, stepBlock(s))
	}
	return out
}

func stepBlock(s flow.Outline) block {
	cond := ""
	if s.When != "" {
		cond = "if " + s.When
	}
	switch s.Kind {
	case "parallel":
		br := make([]block, 0, len(s.Children))
		labels := make([]string, len(s.Children))
		for _, c := range s.Children {
			br = append(br, stepBlock(c))
		}
		return &fork{head: &box{title: "parallel " + s.ID, cond: cond, fill: "#eef0fb", optional: s.Optional}, branches: br, labels: labels}
	case "switch":
		var br []block
		var labels []string
		for _, c := range s.Cases {
			br = append(br, branch(c.Steps))
			labels = append(labels, "when "+c.When)
		}
		br = append(br, branch(s.Default))
		labels = append(labels, "otherwise")
		return &fork{head: &box{title: "switch " + s.ID, detail: "first case that holds", cond: cond, fill: "#fff4db"}, branches: br, labels: labels}
	case "foreach":
		label := "foreach " + s.ID + ": " + s.Items
		detail := fmt.Sprintf("each item, %d at a time", s.Concurrency)
		return &frame{title: label, detail: detail, cond: cond, inner: branch(s.Children)}
	case "steps":
		return &frame{title: "steps " + s.ID, detail: "in order", cond: cond, inner: branch(s.Children)}
	}
	bx := &box{title: s.Kind + " " + s.ID, cond: cond, optional: s.Optional, fill: "#ffffff"}
	switch s.Kind {
	case "call":
		bx.detail = s.Source + "." + s.Operation
		bx.fill = "#e8eef7"
	case "transform":
		bx.detail = "plugin " + s.Plugin + "." + s.PluginOp + " (sandboxed)"
		bx.fill = "#f1ebf7"
	case "fail":
		bx.detail = fmt.Sprintf("problem %s (%d)", s.Problem, s.ProblemStatus)
		bx.fill = "#fbe9e9"
	case "set":
		bx.detail = "compute values"
	}
	if s.Optional {
		bx.detail += " · optional"
	}
	return bx
}

func branch(steps []flow.Outline) block {
	if len(steps) == 0 {
		return &pill{text: "continue", fill: "#f4f4f4"}
	}
	return &seq{items: blocks(steps)}
}

// box is one step: an optional condition band, a title and a detail line.
type box struct {
	title, detail, cond string
	fill                string
	optional            bool
}

func (bx *box) lines() int {
	n := 1
	if bx.detail != "" {
		n++
	}
	if bx.cond != "" {
		n++
	}
	return n
}

func (bx *box) size() (float64, float64) {
	w := minBoxW
	for _, t := range []string{bx.title, bx.detail, bx.cond} {
		w = max(w, textW(t)+2*padX)
	}
	return w, float64(bx.lines())*lineH + 2*padY
}

func (bx *box) draw(b *strings.Builder, x, y, w float64) {
	bw, bh := bx.size()
	left := x + (w-bw)/2
	dash := ""
	if bx.optional {
		dash = ` stroke-dasharray="5 3"`
	}
	b.WriteString("<g>")
	fmt.Fprintf(b, "<title>%s</title>", esc(strings.TrimSpace(strings.Join([]string{bx.cond, bx.title, bx.detail}, "\n"))))
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="6" fill="%s" stroke="%s" stroke-width="1.2"%s/>`, num(left), num(y), num(bw), num(bh), bx.fill, ink, dash)
	ty := y + padY + 12
	if bx.cond != "" {
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="4" fill="#fff4db"/>`, num(left+3), num(y+3), num(bw-6), num(lineH+2))
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-style="italic" fill="%s">%s</text>`, num(left+bw/2), num(ty), muted, esc(trunc(bx.cond)))
		ty += lineH
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-weight="600" fill="%s">%s</text>`, num(left+bw/2), num(ty), ink, esc(trunc(bx.title)))
	if bx.detail != "" {
		ty += lineH
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`, num(left+bw/2), num(ty), muted, esc(trunc(bx.detail)))
	}
	b.WriteString("</g>\n")
}

// pill is the request, the answer, or an empty branch.
type pill struct{ text, fill string }

func (p *pill) size() (float64, float64) { return textW(p.text) + 3*padX, 28 }

func (p *pill) draw(b *strings.Builder, x, y, w float64) {
	pw, ph := p.size()
	left := x + (w-pw)/2
	fmt.Fprintf(b, `<g><rect x="%s" y="%s" width="%s" height="%s" rx="14" fill="%s" stroke="%s" stroke-width="1.2"/>`, num(left), num(y), num(pw), num(ph), p.fill, ink)
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="%s">%s</text></g>`+"\n", num(left+pw/2), num(y+18), ink, esc(trunc(p.text)))
}

// seq stacks blocks with an arrow between each two.
type seq struct{ items []block }

func (s *seq) size() (float64, float64) {
	var w, h float64
	for i, it := range s.items {
		iw, ih := it.size()
		w = max(w, iw)
		h += ih
		if i > 0 {
			h += vGap
		}
	}
	return w, h
}

func (s *seq) draw(b *strings.Builder, x, y, w float64) {
	for i, it := range s.items {
		_, ih := it.size()
		if i > 0 {
			arrow(b, x+w/2, y-vGap, y)
		}
		it.draw(b, x, y, w)
		y += ih + vGap
	}
}

// fork is a parallel or a switch: a head, branches side by side (each
// under its label), and a bar where they join.
type fork struct {
	head     *box
	branches []block
	labels   []string
}

func (f *fork) labelH() float64 {
	for _, l := range f.labels {
		if l != "" {
			return lineH + 4
		}
	}
	return 0
}

func (f *fork) branchW(i int) float64 {
	w, _ := f.branches[i].size()
	if f.labels[i] != "" {
		w = max(w, textW(trunc(f.labels[i]))+8)
	}
	return w
}

func (f *fork) size() (float64, float64) {
	hw, hh := f.head.size()
	var bw, bh float64
	for i, br := range f.branches {
		_, h := br.size()
		bw += f.branchW(i)
		if i > 0 {
			bw += hGap
		}
		bh = max(bh, h)
	}
	return max(hw, bw), hh + vGap + f.labelH() + bh + vGap + 4
}

func (f *fork) draw(b *strings.Builder, x, y, w float64) {
	_, hh := f.head.size()
	f.head.draw(b, x, y, w)
	cx := x + w/2
	_, total := f.size()
	var bw float64
	for i := range f.branches {
		bw += f.branchW(i)
		if i > 0 {
			bw += hGap
		}
	}
	top := y + hh + vGap
	joinY := y + total - 4
	bx := x + (w-bw)/2
	for i, br := range f.branches {
		iw := f.branchW(i)
		_, ih := br.size()
		mid := bx + iw/2
		// from the head down, across, and down into the branch
		fmt.Fprintf(b, `<path d="M%s %sV%sH%sV%s" fill="none" stroke="%s" stroke-width="1.2" marker-end="url(#fd-arrow)"/>`+"\n",
			num(cx), num(y+hh), num(y+hh+vGap/2), num(mid), num(top+f.labelH()), ink)
		if l := f.labels[i]; l != "" {
			fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-style="italic" fill="%s">%s</text>`+"\n", num(mid+4), num(top+f.labelH()-6), muted, esc(trunc(l)))
		}
		br.draw(b, bx, top+f.labelH(), iw)
		fmt.Fprintf(b, `<path d="M%s %sV%s" fill="none" stroke="%s" stroke-width="1.2"/>`+"\n", num(mid), num(top+f.labelH()+ih), num(joinY), ink)
		bx += iw + hGap
	}
	left := x + (w-bw)/2 + f.branchW(0)/2
	right := x + (w+bw)/2 - f.branchW(len(f.branches)-1)/2
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="4" fill="%s"/>`+"\n", num(min(left, cx)-2), num(joinY), num(max(right, cx)-min(left, cx)+4), ink)
}

// frame is a foreach or a group: its steps inside a dashed frame.
type frame struct {
	title, detail, cond string
	inner               block
}

func (f *frame) headH() float64 {
	n := 2.0
	if f.cond != "" {
		n++
	}
	return n*lineH + padY
}

func (f *frame) size() (float64, float64) {
	iw, ih := f.inner.size()
	w := max(iw+2*padX, textW(trunc(f.title))+2*padX, textW(f.detail)+2*padX, textW(trunc(f.cond))+2*padX)
	return w, f.headH() + ih + 2*padY
}

func (f *frame) draw(b *strings.Builder, x, y, w float64) {
	fw, fh := f.size()
	left := x + (w-fw)/2
	fmt.Fprintf(b, `<g><title>%s</title><rect x="%s" y="%s" width="%s" height="%s" rx="8" fill="#f7f7f7" stroke="%s" stroke-width="1.2" stroke-dasharray="6 3"/>`,
		esc(strings.TrimSpace(f.cond+"\n"+f.title+"\n"+f.detail)), num(left), num(y), num(fw), num(fh), ink)
	ty := y + padY + 12
	if f.cond != "" {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-style="italic" fill="%s">%s</text>`, num(left+fw/2), num(ty), muted, esc(trunc(f.cond)))
		ty += lineH
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-weight="600" fill="%s">%s</text>`, num(left+fw/2), num(ty), ink, esc(trunc(f.title)))
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="%s">%s</text></g>`+"\n", num(left+fw/2), num(ty+lineH), muted, esc(f.detail))
	iw, _ := f.inner.size()
	f.inner.draw(b, left+(fw-iw)/2, y+f.headH()+padY, iw)
}

func arrow(b *strings.Builder, x, y1, y2 float64) {
	fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.2" marker-end="url(#fd-arrow)"/>`+"\n", num(x), num(y1), num(x), num(y2-1), ink)
}

func textW(s string) float64 { return float64(len([]rune(trunc(s)))) * charW }

func trunc(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxChars {
		return string(r[:maxChars-1]) + "…"
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// describeSteps is the diagram's text alternative: every step in order.
func describeSteps(steps []flow.Outline) string {
	var parts []string
	var walk func([]flow.Outline, string)
	walk = func(ss []flow.Outline, in string) {
		for _, s := range ss {
			parts = append(parts, in+StepSummary(s))
			walk(s.Children, in+s.ID+" › ")
			for _, c := range s.Cases {
				walk(c.Steps, in+s.ID+" (when "+c.When+") › ")
			}
			walk(s.Default, in+s.ID+" (otherwise) › ")
		}
	}
	walk(steps, "")
	return strings.Join(parts, "; ")
}

// StepSummary says in words what one step does.
func StepSummary(s flow.Outline) string {
	var b strings.Builder
	b.WriteString(s.ID + ": ")
	switch s.Kind {
	case "call":
		fmt.Fprintf(&b, "calls %s.%s", s.Source, s.Operation)
	case "transform":
		fmt.Fprintf(&b, "runs plugin %s.%s", s.Plugin, s.PluginOp)
	case "fail":
		fmt.Fprintf(&b, "answers problem %s (%d)", s.Problem, s.ProblemStatus)
	case "set":
		b.WriteString("computes values")
	case "parallel":
		fmt.Fprintf(&b, "runs %d branches in parallel", len(s.Children))
	case "switch":
		fmt.Fprintf(&b, "chooses the first of %d cases that holds", len(s.Cases))
	case "foreach":
		fmt.Fprintf(&b, "for each item of %s (%d at a time)", s.Items, s.Concurrency)
	case "steps":
		b.WriteString("runs a group of steps in order")
	}
	if s.When != "" {
		fmt.Fprintf(&b, ", only if %s", s.When)
	}
	if s.Optional {
		b.WriteString(", optional")
	}
	return b.String()
}
