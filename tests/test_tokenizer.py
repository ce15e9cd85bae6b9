from factory.model.tokenizer import Tokenizer


def test_special_ids_and_templates(tiny_vocab):
    tok = Tokenizer.from_folder(tiny_vocab)
    assert (tok.pad_id, tok.cls_id, tok.sep_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 1000)
    a, b = tok.encode("bala pe tuno."), tok.encode("ção nhe lhu")
    assert a and min(a) > 3
    assert tok.single(a, 64) == [1, *a, 2]
    pair = tok.pair(a * 20, b, 16)
    assert len(pair) == 16 and pair[0] == 1 and pair.count(2) == 2 and pair[-len(b) - 1 : -1] == b
