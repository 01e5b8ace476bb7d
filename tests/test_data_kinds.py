"""Data kinds (issue 10): K-class files, pairwise comparisons, chess puzzles, prompting formats, and
the fingerprints of existing (classify) recipes staying what they were."""

import csv
import hashlib
import json
import random
from pathlib import Path

import chess
import pytest

from w2s_core.data import (
    DATASETS,
    SYNTHETIC_VOCAB,
    PromptFormat,
    Split,
    chess_prompt,
    class_count,
    dataset_fingerprint,
    format_anthropic_hh,
    format_anthropic_hh_pair,
    kind_problem,
    load_pools,
    make_splits,
    mate_in_one,
    pair_tasks,
    pair_text,
    prompt_format,
    render,
    split_hh,
    synthetic,
)
from w2s_core.data.local import file_sha256
from w2s_core.data.puzzles import load_puzzles, puzzle_row
from w2s_core.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
PUZZLE_FIXTURE = ROOT / "tests" / "fixtures" / "chess" / "mate_in_one.csv"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def cfg_for(path, **kw):
    return {"path": str(path), "seed": 0, **kw}


# ---------------------------------------------------------------- K-class local files


@pytest.mark.parametrize(
    ("values", "expected", "k"),
    [
        ([0, 1, 2, 1, 0, 2], [0, 1, 2, 1, 0, 2], 3),  # ints 0..K-1 stay
        ([1, 2, 3, 2, 1, 3], [0, 1, 2, 1, 0, 2], 3),  # other consecutive ints: index among sorted values
        ([-1, 0, 1, 1], [0, 1, 2, 2], 3),
        (["pos", "neg", "neutral", "neg", "pos", "neutral"], [2, 0, 1, 0, 2, 1], 3),  # strings: sorted
        (["0", "1", "3", "2", "1", "0"], [0, 1, 3, 2, 1, 0], 4),  # CSV-style strings spelling ints
        (["true", "0", True, 1, "FALSE", 0], [1, 0, 1, 1, 0, 0], 2),  # binary: today's mapping
    ],
)
def test_k_class_labels_map_as_documented(tmp_path, values, expected, k):
    path = write_jsonl(tmp_path / "k.jsonl", [{"text": f"t{i}", "label": v} for i, v in enumerate(values)])
    train, test, n_classes = load_pools(cfg_for(path))
    assert [row[1] for row in train] == expected and n_classes == k and test is None
    assert class_count(cfg_for(path)) == k


def test_k_class_errors_name_the_column(tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}])
    with pytest.raises(InputError, match=r"one\.jsonl.*'label' \(label_column\).*at least 2"):
        load_pools(cfg_for(one))
    gap = write_jsonl(tmp_path / "gap.jsonl", [{"text": str(i), "label": v} for i, v in enumerate([0, 1, 3, 3])])
    with pytest.raises(InputError, match=r"gap\.jsonl.*integers 0, 1, 3, which skip 2.*consecutive"):
        load_pools(cfg_for(gap))
    frac = write_jsonl(tmp_path / "frac.jsonl", [{"text": "a", "label": 0.5}, {"text": "b", "label": 2}])
    with pytest.raises(InputError, match=r"frac\.jsonl.*label_column.*e\.g\. 0\.5, 2"):
        load_pools(cfg_for(frac))


def test_k_class_splits_balance_and_shared_n_classes(tmp_path):
    rows = [{"text": f"row {i}", "label": ["a", "b", "c"][i % 3]} for i in range(120)]
    path = write_csv(tmp_path / "k.csv", rows)
    cfg = cfg_for(path, n_train=20, n_test=10, balance=True)
    splits = make_splits(cfg, 1)
    for name in ("A", "B", "test"):
        labels = splits[name].labels
        assert [labels.count(c) for c in range(3)] == [4, 3, 3], name  # remainder to the lowest class
        assert splits[name].n_classes == 3 and splits[name].choices is None
    assert make_splits(cfg, 1) == splits  # deterministic
    # a split that happens to lack a class still says K = 3 (from the whole file)
    rare = [{"text": f"row {i}", "label": 2 if i == 0 else i % 2} for i in range(40)]
    rare_path = write_jsonl(tmp_path / "rare.jsonl", rare)
    drawn = make_splits(cfg_for(rare_path, n_train=10, n_test=10), 0)
    assert {s.n_classes for s in drawn.values()} == {3}
    make_splits(cfg_for(path, n_train=90, n_test=30, balance=True), 0)  # 30 of each class left
    with pytest.raises(InputError, match=r"n_train = 92 .*90 class-balanced"):
        make_splits(cfg_for(path, n_train=92, n_test=30, balance=True), 0)


def test_split_keep_keeps_choices_and_n_classes():
    split = Split(["p0", "p1", "p2"], [1, 0, 2], [7, 8, 9], None, [("a", "b"), ("c", "d"), ("e", "f", "g")], 0)
    kept = split.keep([0, 2])
    assert kept.choices == [("a", "b"), ("e", "f", "g")] and kept.n_classes == 0 and kept.positions == [0, 2]
    assert kept.keep([1]).choices == [("e", "f", "g")] and kept.keep([1]).index == [2]


# ---------------------------------------------------------------- pairwise


def pair_rows(n):
    return [{"prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"} for i in range(n)]


def test_pairwise_file_rows_order_and_balance(tmp_path):
    rows = pair_rows(300)
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    train, _, n_classes = load_pools(cfg_for(path, kind="pairwise"))
    assert n_classes == 2
    for row, source in zip(train, rows):
        assert row[0] == source["prompt"] and row[2][row[1]] == source["chosen"]
        assert set(row[2]) == {source["chosen"], source["rejected"]}
    first = sum(row[1] == 0 for row in train)
    assert 120 < first < 180  # about half the pairs put the chosen reply first
    # the order comes from the pair's content: another file order (and another format) gives the same
    shuffled = rows[::-1]
    other = write_csv(tmp_path / "pairs.csv", shuffled)
    again = {row[0]: row for row in load_pools(cfg_for(other, kind="pairwise"))[0]}
    assert all(again[row[0]] == row for row in train)


def test_pairwise_splits_have_choices_and_skip_unusable_pairs(tmp_path):
    rows = pair_rows(30)
    rows[3]["rejected"] = "  "  # a blank reply
    rows[4]["rejected"] = rows[4]["chosen"]  # nothing to prefer
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    splits = make_splits(cfg_for(path, kind="pairwise", n_train=18, n_test=10), 0)
    drawn = [i for s in splits.values() for i in s.ids]
    assert len(drawn) == 28 and not {3, 4} & set(drawn)
    for s in splits.values():
        assert s.n_classes == 2 and len(s.choices) == len(s.texts)
        assert all(c[y].startswith("good") for c, y in zip(s.choices, s.labels))
    with pytest.raises(InputError, match=r"n_train = 20 .*18 pairs with two different, non-blank replies"):
        make_splits(cfg_for(path, kind="pairwise", n_train=20, n_test=10), 0)


def test_pairwise_column_mapping_and_missing_rejected_column(tmp_path):
    rows = [{"q": "hi", "yes": "hello", "no": "go away"}] * 4
    path = write_jsonl(tmp_path / "mapped.jsonl", rows)
    cfg = cfg_for(path, kind="pairwise", chosen_column="yes", rejected_column="no", prompt_column="q")
    row = load_pools(cfg)[0][0]
    assert row[0] == "hi" and row[2][row[1]] == "hello"
    no_prompt = load_pools(cfg_for(path, kind="pairwise", chosen_column="yes", rejected_column="no"))[0][0]
    assert no_prompt[0] == ""  # no "prompt" column: the replies alone
    bad = write_jsonl(tmp_path / "norejected.jsonl", [{"prompt": "p", "chosen": "c", "other": "x"}])
    with pytest.raises(InputError) as err:
        make_splits(cfg_for(bad, kind="pairwise", n_train=2, n_test=2), 0)
    assert all(
        s in str(err.value) for s in ("norejected.jsonl", "'rejected'", "rejected_column", "prompt, chosen, other")
    )


def test_pair_text():
    assert pair_text("", "just this") == "just this"
    assert pair_text("Question?", "Answer.") == "Question?\nAnswer."
    assert pair_text("\n\nHuman: hi\n\nAssistant:", " hello") == "\n\nHuman: hi\n\nAssistant: hello"


HH = {
    "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: It is 6.",
    "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: Go away.",
}


def test_anthropic_hh_pairwise_formatter():
    prompt, chosen, rejected = split_hh(HH["chosen"], HH["rejected"])
    assert prompt == "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant:"
    assert (chosen, rejected) == (" It is 6.", " Go away.")
    row = format_anthropic_hh_pair(HH, random.Random(0))
    assert row[0] == prompt and row[2][row[1]] == chosen and row == format_anthropic_hh_pair(HH, random.Random(9))
    assert pair_text(row[0], row[2][row[1]]) == HH["chosen"]  # the reward model reads the transcript
    assert split_hh("no turns here", "none here") == ("", "no turns here", "none here")
    # the classify formatter is unchanged: a whole transcript, label 1 for the chosen one
    text, label = format_anthropic_hh(HH, random.Random(0))[:2]
    assert text == (HH["chosen"] if label else HH["rejected"])
    assert DATASETS["anthropic_hh"].kinds == ("classify", "pairwise")


def synthetic_score(text):
    """The synthetic polarity score recomputed from the words (as tests/test_data.py's rule)."""
    score, factor = 0.0, 1.0
    for word in text.split():
        if word in synthetic.NEGATIONS:
            factor = -1.0
        elif word in synthetic.INTENSIFIERS:
            factor = 2.0
        else:
            score += factor * synthetic.WEIGHTS.get(word, 0.0)
            factor = 1.0
    return score


def test_synthetic_pairs_prefer_the_more_positive_text():
    train, test = pair_tasks.load_synthetic_pairs({"n_total": 300, "noise": 0.1})
    assert len(train) == len(test) == 300
    assert (train, test) == pair_tasks.load_synthetic_pairs({"n_total": 300, "noise": 0.1})  # deterministic
    for row in test:  # clean: the chosen text scores higher, by at least the margin
        chosen, other = row[2][row[1]], row[2][1 - row[1]]
        assert row[0] == "" and synthetic_score(chosen) - synthetic_score(other) >= pair_tasks.SYNTHETIC_MARGIN - 1e-9
    flipped = sum(synthetic_score(r[2][r[1]]) < synthetic_score(r[2][1 - r[1]]) for r in train)
    assert 10 < flipped < 55  # the train pool's noise (10%)
    assert 100 < sum(r[1] for r in test) < 200
    assert pair_tasks.synthetic_pairs("train", 50, 0.1) == train[:50]  # bigger pools extend smaller ones
    assert not {r[2] for r in test} & {r[2] for r in train}
    splits = make_splits(
        {"name": "synthetic-pairs", "kind": "pairwise", "n_total": 300, "n_train": 40, "n_test": 20, "seed": 0}, 0
    )
    assert splits["test"].n_classes == 2 and len(splits["test"].choices) == 20
    # exposing the score left the classify task's output as it was (digest of the pool before issue 10)
    pool = json.dumps(synthetic.synthetic_pool("train", 200, 0.05)).encode()
    assert hashlib.sha256(pool).hexdigest() == "459c6d44b4c2cdefa5bea974e2cfb7e354359d845a4a27384aeec40dee7e1a41"


def test_movie_pairs_margin_and_preference():
    snippets = [(f"snippet {i}", r) for i, r in enumerate([-3.0, -2.5, -0.2, 0.1, 0.5, 1.9, 2.0, 3.5])]
    rating = dict(snippets)
    pairs = pair_tasks.movie_pairs(snippets, "train", 15)
    assert pairs == pair_tasks.movie_pairs(snippets, "train", 15)
    assert len({frozenset(r[2]) for r in pairs}) == 15  # distinct pairs
    for row in pairs:
        chosen, other = row[2][row[1]], row[2][1 - row[1]]
        assert rating[chosen] - rating[other] >= pair_tasks.MOVIE_MARGIN
    with pytest.raises(InputError, match="n_total = 500"):
        pair_tasks.movie_pairs(snippets, "train", 500)


def test_movie_pairs_keep_test_snippets_out_of_training(monkeypatch):
    snippets = [(f"snippet {i}", (i * 37 % 80) / 10 - 4) for i in range(80)]  # ratings -4..3.9
    monkeypatch.setattr(pair_tasks.movie_snippets, "rated", lambda: snippets)
    cfg = {"name": "movie-pairs", "kind": "pairwise", "n_total": 60, "n_train": 40, "n_test": 20, "seed": 0}
    train, test, _ = load_pools(cfg)
    assert len(train) == len(test) == 60
    train_texts, test_texts = {t for r in train for t in r[2]}, {t for r in test for t in r[2]}
    assert not train_texts & test_texts and len(test_texts) <= 20  # a quarter of the snippets
    splits = make_splits(cfg, 0)
    rating = dict(snippets)
    for s in splits.values():
        assert all(rating[c[y]] - rating[c[1 - y]] >= pair_tasks.MOVIE_MARGIN for c, y in zip(s.choices, s.labels))


# ---------------------------------------------------------------- chess


def brute_mates(board):
    out = []
    for move in list(board.legal_moves):
        board.push(move)
        if board.is_checkmate():
            out.append(move.uci())
        board.pop()
    return out


def test_mating_moves_filter_misses_no_mate():
    rng, checked, mates = random.Random(3), 0, 0
    while checked < 1500:
        board = chess.Board()
        for _ in range(200):
            legal = list(board.legal_moves)
            if not legal:
                break
            board.push(rng.choice(legal))
            legal = list(board.legal_moves)
            found = [m.uci() for m in mate_in_one.mating_moves(board, legal)]
            assert found == brute_mates(board), board.fen()
            checked, mates = checked + 1, mates + bool(found)
    assert mates > 0


def test_mate_in_one_positions_mate_exactly_once(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    puzzles = mate_in_one.generate("unit", 25)
    assert puzzles == mate_in_one.generate("unit", 25)
    for fen, opponent, answer in puzzles:
        board = chess.Board(fen)
        board.push_uci(opponent)
        assert brute_mates(board) == [answer]
    train, test, n_classes = load_pools({"name": "mate-in-one", "kind": "chess", "n_total": 20})
    assert n_classes == 0 and len(train) == len(test) == 20
    assert (tmp_path / "mate-in-one" / f"n20-v{mate_in_one.VERSION}.json").is_file()  # cached
    assert (train, test) == load_pools({"name": "mate-in-one", "kind": "chess", "n_total": 20})[:2]
    assert not {r[0] for r in train} & {r[0] for r in test}  # different seeds, no shared position
    for row in train:
        board = chess.Board(row[0].split("\n")[0].removeprefix("FEN: "))
        assert list(row[2]) == sorted(m.uci() for m in board.legal_moves)
        board.push_uci(row[2][row[1]])
        assert board.is_checkmate()
    splits = make_splits(
        {"name": "mate-in-one", "kind": "chess", "n_total": 20, "n_train": 10, "n_test": 6, "seed": 0}, 0
    )
    assert splits["A"].n_classes == 0 and all(len(c) > 1 for c in splits["A"].choices)


def test_fixture_csv_parses_back_to_the_generated_positions():
    rows = load_puzzles({"path": str(PUZZLE_FIXTURE)})
    expected = [puzzle_row(fen, f"{a} {b}") for fen, a, b in mate_in_one.generate("fixture", 40)]
    assert len(rows) == 40 and [rows[i] for i in range(40)] == expected
    assert "generated, not Lichess data" in (PUZZLE_FIXTURE.parent / "README.md").read_text()
    splits = make_splits({"path": str(PUZZLE_FIXTURE), "kind": "chess", "n_train": 20, "n_test": 10, "seed": 0}, 0)
    for text, choices, label in zip(splits["B"].texts, splits["B"].choices, splits["B"].labels):
        board = chess.Board(text.split("\n")[0].removeprefix("FEN: "))
        board.push_uci(choices[label])
        assert board.is_checkmate()


def test_puzzle_row_reads_the_lichess_format():
    # 1. e4 e5 2. Bc4 Nc6 3. Qh5, then Nf6?? (the opponent's move) and Qxf7# (the answer)
    board = chess.Board()
    for move in ("e2e4", "e7e5", "f1c4", "b8c6", "d1h5"):
        board.push_uci(move)
    fen = board.fen()
    text, label, choices = puzzle_row(fen, "g8f6 h5f7")
    board = chess.Board(fen)
    board.push_uci("g8f6")
    assert text == chess_prompt(board.fen(), ["g8f6"]) and choices[label] == "h5f7"
    assert text.endswith("Moves: g8f6\nBest move:") and choices == tuple(sorted(choices))


PUZZLE_HEADER = "PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags\n"
START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"


@pytest.mark.parametrize(
    ("moves", "fen", "fragments"),
    [
        ("e2e4 e2e4", START, ["line 3", "'p2'", "'e2e4'", "solution's first move"]),  # illegal answer
        ("e2e5 e7e5", START, ["line 3", "'p2'", "'e2e5'", "opponent's move"]),  # illegal first move
        ("e2e4", START, ["line 3", "'p2'", "'e2e4'", "1 move(s)"]),  # too few moves
        ("e2e4 e7e5", "not a fen", ["line 3", "'p2'", "'not a fen'"]),  # bad FEN
    ],
)
def test_bad_puzzle_rows_name_file_line_and_puzzle(tmp_path, moves, fen, fragments):
    path = tmp_path / "puzzles.csv"
    path.write_text(PUZZLE_HEADER + f"p1,{START},e2e4 e7e5,1500,,,,,,\np2,{fen},{moves},1500,,,,,,\n")
    with pytest.raises(InputError) as err:
        make_splits({"path": str(path), "kind": "chess", "n_train": 0, "n_test": 2, "seed": 0}, 0)
    assert all(f in str(err.value) for f in ["puzzles.csv", *fragments]), str(err.value)


def test_chess_file_errors_and_kind_problems(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,fen\nx,y\n")
    with pytest.raises(InputError, match=r"p\.csv.*lacks the column\(s\) PuzzleId, FEN, Moves.*id, fen"):
        load_pools({"path": str(path), "kind": "chess"})
    assert kind_problem({"name": "sciq", "kind": "chess"}) == "dataset 'sciq' supports kind 'classify', not 'chess'"
    assert "supports kind 'chess'" in kind_problem({"name": "mate-in-one"})
    assert kind_problem({"name": "anthropic_hh", "kind": "pairwise"}) is None
    assert kind_problem({"path": "x.jsonl", "kind": "chess"}).startswith("kind 'chess' reads a Lichess puzzle CSV")
    assert "balance" in kind_problem({"name": "mate-in-one", "kind": "chess", "balance": True})
    assert kind_problem({"path": "x.jsonl", "kind": "pairwise"}) is None
    with pytest.raises(InputError, match="supports kind 'classify', not 'pairwise'"):
        make_splits({"name": "synthetic", "kind": "pairwise", "n_train": 2, "n_test": 2, "seed": 0}, 0)


# ---------------------------------------------------------------- prompting formats


def test_registered_prompt_formats():
    for name, info in DATASETS.items():
        if "classify" in info.kinds:
            fmt = prompt_format({"name": name})
            assert "{text}" in fmt.template and len(fmt.label_words) == 2, name
    synth = prompt_format({"name": "synthetic"})
    assert synth.label_words == (" bad", " good")
    words = render(synth, "x").split() + [w.strip() for w in synth.label_words]
    assert set(words) - {"x"} <= set(SYNTHETIC_VOCAB)  # the tiny models' word vocabulary
    assert prompt_format({"name": "amazon_polarity"}).label_words == (" negative", " positive")
    assert prompt_format({"name": "sciq"}) != prompt_format({"name": "boolq"})
    assert render(PromptFormat("Q: {text} A:", (" n", " y")), "a {b} c") == "Q: a {b} c A:"  # no str.format


def test_prompt_format_overrides_and_errors(tmp_path):
    fmt = prompt_format({"name": "sciq", "template": "<<{text}>>", "label_words": [" wrong", " right"]})
    assert fmt == PromptFormat("<<{text}>>", (" wrong", " right"))
    assert prompt_format({"name": "boolq", "template": "T {text}"}).label_words == (" No", " Yes")
    with pytest.raises(InputError, match=r"\[data\] label_words has 3 word"):
        prompt_format({"name": "sciq", "label_words": [" a", " b", " c"]})
    with pytest.raises(InputError, match=r"\[data\] template"):
        prompt_format({"name": "sciq", "template": "no slot"})
    path = write_jsonl(tmp_path / "k3.jsonl", [{"text": f"t{i}", "label": i % 3} for i in range(9)])
    with pytest.raises(InputError, match=r"\[data\] label_words is needed"):
        prompt_format(cfg_for(path))
    assert prompt_format(cfg_for(path, label_words=[" a", " b", " c"])).template == "{text}\nAnswer:"
    with pytest.raises(InputError, match=r"\[data\] label_words has 2 word.*3 classes"):
        prompt_format(cfg_for(path, label_words=[" a", " b"]))
    for cfg in ({"name": "synthetic-pairs", "kind": "pairwise"}, {"name": "mate-in-one", "kind": "chess"}):
        with pytest.raises(InputError, match="Prompting needs classify data"):
            prompt_format(cfg)


# ---------------------------------------------------------------- fingerprints


def sha(identity):
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def test_classify_fingerprints_have_no_new_keys(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    local = {"sha256": file_sha256(path), "text_column": "text", "label_column": "label", "balance": False}
    for cfg in (cfg_for(path), cfg_for(path, kind="classify", template="{text}", label_words=["a", "b"])):
        assert dataset_fingerprint(cfg) == sha(local)
    synth = {"dataset": "synthetic", "n_total": 4000, "noise": 0.05, "version": 1, "balance": False}
    assert dataset_fingerprint({"name": "synthetic"}) == sha(synth)
    assert dataset_fingerprint({"name": "synthetic", "kind": "classify"}) == sha(synth)
    hh = {"dataset": "anthropic_hh", "hub_id": "Anthropic/hh-rlhf", "revision": None, "formatter_version": 1,
          "splits": ["train", "test"], "balance": False}  # fmt: skip
    assert dataset_fingerprint({"name": "anthropic_hh"}) == sha(hh)
    assert dataset_fingerprint({"name": "anthropic_hh", "kind": "pairwise"}) == sha({**hh, "kind": "pairwise"})


def test_pairwise_fingerprint_holds_kind_and_columns(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", pair_rows(4))
    base = dataset_fingerprint(cfg_for(path, kind="pairwise"))
    expected = {"sha256": file_sha256(path), "chosen_column": "chosen", "rejected_column": "rejected",
                "prompt_column": "prompt", "balance": False, "kind": "pairwise"}  # fmt: skip
    assert base == sha(expected)
    assert dataset_fingerprint(cfg_for(path, kind="pairwise", rejected_column="x")) != base
    assert dataset_fingerprint(cfg_for(path)) != base
