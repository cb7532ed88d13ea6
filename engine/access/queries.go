package access

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/openfsb/fsb/engine/expr"
)

// Read-only views for the admin API and the CLI. They return copies;
// slices inside them are shared with the registry and must not be changed.

// Organisation returns an organisation by enterprise number (any writing).
func (r *Registry) Organisation(id string) (Organisation, error) {
	en, _ := expr.NormalizeEnterpriseNumber(id)
	if o := r.snap.Load().orgs[en]; o != nil {
		return *o, nil
	}
	return Organisation{}, fmt.Errorf("organisation %q: %w", id, ErrNotFound)
}

// Organisations lists every organisation by enterprise number.
func (r *Registry) Organisations() []Organisation {
	return sorted(r.snap.Load().orgs, func(o *Organisation) bool { return true }, func(o *Organisation) string { return o.EnterpriseNumber })
}

// Application returns an application by id.
func (r *Registry) Application(id string) (Application, error) {
	if a := r.snap.Load().apps[id]; a != nil {
		return *a, nil
	}
	return Application{}, fmt.Errorf("application %q: %w", id, ErrNotFound)
}

// Applications lists an organisation's applications ("" for all), by id.
func (r *Registry) Applications(org string) []Application {
	en, _ := expr.NormalizeEnterpriseNumber(org)
	return sorted(r.snap.Load().apps, func(a *Application) bool { return org == "" || a.Organisation == en }, func(a *Application) string { return a.ID })
}

// Credential returns a credential by id. The secret hash is left out.
func (r *Registry) Credential(id string) (Credential, error) {
	if c := r.snap.Load().creds[id]; c != nil {
		out := *c
		out.SecretHash = nil
		return out, nil
	}
	return Credential{}, fmt.Errorf("credential %q: %w", id, ErrNotFound)
}

// Credentials lists an application's credentials ("" for all), by id,
// without secret hashes.
func (r *Registry) Credentials(app string) []Credential {
	out := sorted(r.snap.Load().creds, func(c *Credential) bool { return app == "" || c.Application == app }, func(c *Credential) string { return c.ID })
	for i := range out {
		out[i].SecretHash = nil
	}
	return out
}

// Grant returns a grant by id.
func (r *Registry) Grant(id string) (Grant, error) {
	if g := r.snap.Load().grants[id]; g != nil {
		return *g, nil
	}
	return Grant{}, fmt.Errorf("grant %q: %w", id, ErrNotFound)
}

// Grants lists an application's grants ("" for all), by id.
func (r *Registry) Grants(app string) []Grant {
	return sorted(r.snap.Load().grants, func(g *Grant) bool { return app == "" || g.Application == app }, func(g *Grant) string { return g.ID })
}

func sorted[T any](m map[string]*T, keep func(*T) bool, key func(*T) string) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		if keep(v) {
			out = append(out, *v)
		}
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(key(&a), key(&b)) })
	return out
}
