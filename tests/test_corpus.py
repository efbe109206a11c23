import pytest

from fiftyone_inficond.corpus import concept_prompt, load_corpus, make_corpus


def test_broden_is_the_default_in_file_order(coco128_dir):
    corpus = load_corpus()
    with open(f"{coco128_dir}/../../corpora/broden.txt") as f:
        names = [line.strip() for line in f if line.strip()]
    assert len(corpus) == 1153
    assert list(corpus.names) == names
    assert corpus.index("bird") == names.index("bird")


@pytest.mark.parametrize(
    "name, prompt",
    [
        ("brewery-outdoor", "brewery (outdoor)"),
        ("wine cellar-bottle storage", "wine cellar (bottle storage)"),
        ("lean-to", "lean-to"),
        ("polka-dotted", "polka-dotted"),
        ("horse-drawn carriage", "horse-drawn carriage"),
        ("check-in-desk", "check-in (desk)"),
        ("  railroad   train ", "railroad train"),
    ],
)
def test_names_become_prompts(name, prompt):
    assert concept_prompt(name) == prompt


def test_duplicates_and_blanks_are_removed_keeping_first():
    corpus = make_corpus(["Dog", "cat", "  ", "dog", "cat ", "brewery-outdoor", "brewery (outdoor)"])
    assert corpus.names == ("Dog", "cat", "brewery-outdoor")


def test_id_is_stable_and_depends_on_order():
    assert make_corpus(["a", "b"]).id == make_corpus(["a", "b", "a"]).id
    assert make_corpus(["a", "b"]).id != make_corpus(["b", "a"]).id


def test_corpus_file_with_comments(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("wheel\n# parts\n\nwindow  # glass\nwheel\nC# code\n")
    assert load_corpus(str(path)).names == ("wheel", "window", "C# code")  # a # inside a word is the name's


def test_a_byte_order_mark_is_not_part_of_the_first_concept(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("wheel\nwindow\n".encode("utf-8-sig"))
    assert load_corpus(str(path)).names == ("wheel", "window")


@pytest.mark.parametrize("source", [[], ["", "   "]])
def test_empty_corpus_is_refused(source):
    with pytest.raises(ValueError, match="corpus is empty"):
        load_corpus(source)


def test_blank_corpus_file_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n# nothing\n")
    with pytest.raises(ValueError, match="corpus is empty"):
        load_corpus(str(path))


def test_missing_corpus_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(str(tmp_path / "nope.txt"))
