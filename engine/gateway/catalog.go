package gateway

import (
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/openfsb/fsb/engine/catalog"
)

// mountCatalog serves the service catalogue (engine/catalog) on the
// consumer listener: its pages and JSON API under catalog.Prefix and each
// API's OpenAPI document at the Belgif reserved paths /{api}/v{n}/doc/….
// It is public, like /health: no credential is asked, no access decision
// made and nothing audited, and it shows nothing secret (no source
// addresses, credentials or grants). Only the catalogue's own paths are
// routed to it, so it cannot shadow a flow.
func (g *Gateway) mountCatalog(app *fiber.App) {
	cat := g.cfg.Catalog
	if cat == nil {
		cat = catalog.New(nil, g.cfg.Plans) // without the documents: no source titles, no examples
	}
	h := adaptor.HTTPHandler(cat.Handler())
	serve := func(c *fiber.Ctx) error {
		g.traceHeaders(c)
		return h(c)
	}
	for _, p := range cat.Paths() {
		app.Get(fiberPath(p), serve)
	}
}
