// Package spec is the document model of OpenFSB configuration: it decodes a
// directory of YAML documents (kinds Source, Flow, Test) keeping the position
// of every node, checks their shape strictly (unknown keys, wrong types,
// missing fields, duplicates), and reports every error it finds as
// file:line:col with the offending line shown.
//
// It knows nothing about how documents are executed: expressions are kept as
// positioned source text for the flow compiler, and cross-document checks
// that need compilation (expression types, step references) live there too,
// reported through the same Error type.
package spec
