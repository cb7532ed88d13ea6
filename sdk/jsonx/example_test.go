package jsonx_test

import (
	"fmt"
	"strings"

	"github.com/openfsb/fsb/sdk/jsonx"
)

func Example() {
	d, err := jsonx.Parse([]byte(`{"person":{"name":"An","ssin":"85073003328"},"items":[{"id":1},{"id":2}]}`))
	if err != nil {
		panic(err)
	}
	defer d.Release()
	name, _ := d.String("person.name")
	d.SetString("person.greeting", "Hello "+name)
	d.Delete("person.ssin")
	d.SetRaw("items[*].seen", []byte("true"))
	fmt.Printf("%s\n", d.Marshal())
	// Output: {"person":{"name":"An","greeting":"Hello An"},"items":[{"id":1,"seen":true},{"id":2,"seen":true}]}
}

func ExampleDoc_Keep() {
	d, _ := jsonx.Parse([]byte(`{"id":7,"secret":"x","items":[{"ssin":"1","name":"a"},{"name":"b"},{"ssin":"3"}]}`))
	d.Keep("id", "items[*].ssin")
	fmt.Printf("%s\n", d.Marshal())
	// Output: {"id":7,"items":[{"ssin":"1"},{"ssin":"3"}]}
}

func ExampleDoc_UpdateStrings() {
	d, _ := jsonx.Parse([]byte(`{"children":[{"name":"an"},{"name":"tom"},{"name":7}]}`))
	n, _ := d.UpdateStrings("children[*].name", strings.ToUpper)
	fmt.Printf("%d: %s\n", n, d.Marshal())
	// Output: 2: {"children":[{"name":"AN"},{"name":"TOM"},{"name":7}]}
}

func ExampleParsePath() {
	_, err := jsonx.ParsePath("items[x]")
	fmt.Println(err)
	p, _ := jsonx.ParsePath(`a\.b[0][*].c`)
	fmt.Println(p)
	// Output:
	// jsonx: path "items[x]": index must be digits or * at offset 6
	// a\.b[0][*].c
}
