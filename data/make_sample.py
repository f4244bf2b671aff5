"""Generate the bundled sample NER corpus (mcrf/data/sample/{train,dev,test}.txt, package data).

Deterministic (seeded ``random.Random``; standard library only): sentences are filled from
templates with names of people (PER), places (LOC), organisations (ORG) and miscellaneous
names (MISC: nationalities, events, languages, products), many of them multi-token. A fifth of
every name list is held out of train and used only in dev/test, so a model must read context
and word shape, not memorise names. Output: CoNLL two-column ``token<TAB>tag`` (BIO), one blank
line between sentences.

Usage: python data/make_sample.py [--seed 13] [--out mcrf/data/sample] [--sizes 600 150 150]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

FIRST = """Anna Ben Carla David Elena Farid Greta Hugo Irene Jonas Kira Luis Maya Nils Olga Pavel Quinn Rosa
Samir Tanya Umar Vera Walter Xenia Yusuf Zoe Amara Bruno Chen Dmitri Emma Felix Hana Ivan Jasmin Kofi Lena Marco
Nadia Oscar Priya Rafael Sofia Tomas Ulla Victor Wanda Yara Aiko Bjorn Clara Diego Esther Fatima Gustav Helga
Ingrid Jorge Kwame Leila Mateo""".split()
LAST = """Adams Becker Costa Dubois Eriksen Fischer Garcia Haddad Ivanova Jensen Kowalski Larsen Moreau Nakamura
Okafor Petrov Quist Rossi Schmidt Tanaka Ulrich Varga Weber Xu Yilmaz Zimmermann Almeida Brandt Castillo Dahl
Engel Falk Gomez Horvat Iqbal Jovanovic Keller Lindqvist Mendes Novak Ortiz Pereira Reyes Santos Torres Vogel
Walsh Young Ziegler Bauer Chowdhury Diaz Ferreira Hoffmann Kim Lopez Mueller Nguyen""".split()
CITIES = """Berlin|Paris|Lisbon|Oslo|Nairobi|Lagos|Lima|Quito|Hanoi|Osaka|Madrid|Vienna|Prague|Dublin|Cairo|Accra|
Toronto|Chicago|Boston|Denver|Sydney|Perth|Mumbai|Delhi|Seoul|Manila|Bogota|Santiago|New York|San Francisco|
Los Angeles|Buenos Aires|Rio de Janeiro|Cape Town|Hong Kong|Kuala Lumpur|Tel Aviv|New Delhi|Abu Dhabi|Mexico City|
St. Petersburg|Salt Lake City|Porto|Ghent|Bergen|Tampere|Graz|Lyon|Kyoto|Leeds""".replace("\n", "").split("|")
COUNTRIES = """Germany|France|Portugal|Norway|Kenya|Nigeria|Peru|Ecuador|Vietnam|Japan|Spain|Austria|Ireland|Egypt|
Ghana|Canada|Brazil|India|Chile|Mexico|Finland|Belgium|United States|United Kingdom|South Africa|New Zealand|
Costa Rica|Sri Lanka|Czech Republic|South Korea|Saudi Arabia|Ivory Coast""".replace("\n", "").split("|")
ORG_STEMS = """Atlas Borealis Cobalt Delta Evergreen Falcon Granite Horizon Ironwood Juniper Keystone Lighthouse
Meridian Northwind Orion Pinnacle Quantum Redwood Summit Tidewater Unity Vanguard Westbrook Zenith Aurora Beacon
Cascade Driftwood Ember Foxglove""".split()
ORG_KINDS = "Bank|Group|Holdings|Airlines|Motors|Energy|Labs|Systems|Foods|Media|Insurance|Partners".split("|")
ORG_FIXED = """United Nations|World Health Organization|European Union|Red Cross|Amnesty International|
National Weather Service|Federal Reserve|Supreme Court|City Council|Olympic Committee|FIFA|NATO|UNESCO|OPEC|
Interpol|Greenpeace""".replace("\n", "").split("|")
NATIONALITIES = """German French Portuguese Norwegian Kenyan Nigerian Peruvian Japanese Spanish Austrian Irish
Egyptian Canadian Brazilian Indian Chilean Mexican Finnish Belgian American British Korean Italian Dutch Swedish
Polish Turkish Greek Danish Russian""".split()
EVENTS = """World Cup|Olympic Games|Tour de France|Champions League|Grand Prix|Winter Olympics|Davis Cup|
Nobel Prize|Cannes Film Festival|Paris Air Show|Super Bowl|Asian Games""".replace("\n", "").split("|")
LANGUAGES = "English|Spanish|Mandarin|Swahili|Arabic|Hindi|Portuguese|Esperanto|Finnish|Tagalog".split("|")
PRODUCTS = """Falcon X2|Nimbus 3000|Orbit Phone|Atlas Pro|Zephyr GT|Quasar Mini|Helix One|Vortex 7|Comet S|
Lumen Max|Polar Pad|Sierra Book""".replace("\n", "").split("|")

FILL: Dict[str, List[str]] = {
    "DAY": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    "MONTH": "January February March April May June July August September October November December".split(),
    "SAID": "said|told reporters|announced|confirmed|warned|insisted|added|noted".split("|"),
    "THING": """contract|merger|report|plan|budget|strike|deal|agreement|proposal|survey|lawsuit|project|
investment|partnership|statement|forecast""".replace("\n", "").split("|"),
    "ADJ": "new|major|surprise|long-awaited|controversial|modest|historic|record|joint|final|early|weekly".split("|"),
    "JOB": "chief executive|minister|spokeswoman|spokesman|coach|director|analyst|mayor|captain|professor".split("|"),
    "MOVE": "flew to|arrived in|moved to|returned to|travelled to|left|visited|toured".split("|"),
    "NUM": [str(n) for n in (2, 3, 4, 5, 7, 9, 10, 12, 15, 18, 20, 25, 30, 40, 45, 60, 75, 100, 250, 1200)],
    "SPORT": "match|final|race|tournament|game|semi-final|qualifier".split("|"),
}

TEMPLATES = """{PER} , the {JOB} of {ORG} , {SAID} on {DAY} that the {THING} would go ahead .
{ORG} {SAID} it would open a new office in {LOC} in {MONTH} .
{PER} {MOVE} {LOC} on {DAY} for talks with {PER} .
The {ADJ} {THING} between {ORG} and {ORG} was signed in {LOC} .
Shares of {ORG} rose {NUM} percent after the {THING} was announced .
{PER} won the {SPORT} in {LOC} , beating {PER} in straight sets .
The {MISC} team reached the {SPORT} of the {MISC} for the first time .
{PER} speaks fluent {MISC} and {MISC} .
Police in {LOC} arrested {NUM} people on {DAY} , a {JOB} {SAID} .
According to {ORG} , about {NUM} people were evacuated from {LOC} .
{PER} will replace {PER} as {JOB} of {ORG} from {MONTH} .
Heavy rain hit {LOC} and {LOC} over the weekend .
The {MISC} government {SAID} it would review the {THING} with {ORG} .
{ORG} launched the {MISC} in {LOC} on {DAY} .
Critics say the {MISC} is too expensive for most buyers in {LOC} .
In {MONTH} , {PER} became the first {MISC} woman to lead {ORG} .
"We are very happy with the {THING} , " {PER} {SAID} .
{PER} scored twice as {ORG} beat {ORG} {NUM} - {NUM} .
Tourism in {LOC} fell by {NUM} percent last year .
The {THING} was criticised by {ORG} and by {PER} , a {JOB} in {LOC} .
{PER} and {PER} met in {LOC} to discuss the {THING} .
A {JOB} at {ORG} in {LOC} {SAID} prices would rise .
The {MISC} will be held in {LOC} next {MONTH} .
{ORG} has {NUM} employees in {LOC} and {LOC} .
Officials from {LOC} and {LOC} will attend the {MISC} .
{PER} , {NUM} , was born in {LOC} .
Flights between {LOC} and {LOC} were cancelled on {DAY} .
The {THING} ended a long dispute between {ORG} and the {MISC} unions .
Experts at {ORG} expect growth of {NUM} percent in {LOC} .
Nobody from {ORG} was available for comment on {DAY} .
It was not clear whether {PER} would travel to {LOC} .
Prices for the {MISC} start at {NUM} dollars .
{PER} {SAID} the {ADJ} {THING} was a mistake .
The match in {LOC} drew {NUM} thousand fans .
Talks resumed on {DAY} after a {ADJ} break .""".split("\n")

Entity = Tuple[List[str], str]


class NamePools:
    """Name lists split into names seen in train and names held out for dev/test."""

    def __init__(self, rng: random.Random) -> None:
        self.pools: Dict[str, Tuple[list, list]] = {}
        lists = {"FIRST": FIRST, "LAST": LAST, "CITY": CITIES, "COUNTRY": COUNTRIES, "STEM": ORG_STEMS,
                 "ORGFIX": ORG_FIXED, "NAT": NATIONALITIES, "EVENT": EVENTS, "LANG": LANGUAGES, "PROD": PRODUCTS}
        for key, names in lists.items():
            shuffled = list(names)
            rng.shuffle(shuffled)
            cut = max(1, len(shuffled) // 5)
            self.pools[key] = (shuffled[cut:], shuffled[:cut])

    def pick(self, rng: random.Random, key: str, held_out: bool) -> str:
        seen, unseen = self.pools[key]
        return rng.choice(unseen if held_out and rng.random() < 0.3 else seen)


def make_entity(kind: str, rng: random.Random, names: NamePools, held_out: bool) -> Entity:
    """One entity of ``kind`` (PER/LOC/ORG/MISC) as tokens and its type."""
    pick = lambda key: names.pick(rng, key, held_out)  # noqa: E731
    r = rng.random()
    if kind == "PER":
        if r < 0.55:
            text = f"{pick('FIRST')} {pick('LAST')}"
        elif r < 0.75:
            text = pick("LAST")
        elif r < 0.9:
            text = f"{pick('FIRST')} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {pick('LAST')}"
        else:
            text = pick("FIRST")
    elif kind == "LOC":
        text = pick("CITY") if r < 0.6 else pick("COUNTRY")
    elif kind == "ORG":
        if r < 0.45:
            text = f"{pick('STEM')} {rng.choice(ORG_KINDS)}"
        elif r < 0.6:
            text = f"University of {pick('CITY')}"
        elif r < 0.7:
            text = f"{pick('LAST')} & {pick('LAST')}"
        else:
            text = pick("ORGFIX")
    else:
        key = "NAT" if r < 0.4 else "EVENT" if r < 0.65 else "LANG" if r < 0.8 else "PROD"
        text = pick(key)
    return text.split(), kind


def make_sentence(rng: random.Random, names: NamePools, held_out: bool) -> List[Tuple[str, str]]:
    """Fill one template; returns ``(token, BIO tag)`` pairs."""
    template = rng.choice(TEMPLATES).split()
    out: List[Tuple[str, str]] = []
    for piece in template:
        if piece.startswith("{") and piece.endswith("}"):
            slot = piece[1:-1]
            if slot in ("PER", "LOC", "ORG", "MISC"):
                tokens, kind = make_entity(slot, rng, names, held_out)
                out += [(tok, ("B-" if i == 0 else "I-") + kind) for i, tok in enumerate(tokens)]
            else:
                out += [(tok, "O") for tok in rng.choice(FILL[slot]).split()]
        else:
            out.append((piece, "O"))
    return out


def generate(seed: int, sizes: Sequence[int]) -> Dict[str, List[List[Tuple[str, str]]]]:
    """All three splits; dev/test may use held-out names, train never does."""
    rng = random.Random(seed)
    names = NamePools(rng)
    splits = {}
    for split, size in zip(("train", "dev", "test"), sizes):
        splits[split] = [make_sentence(rng, names, held_out=split != "train") for _ in range(size)]
    return splits


def write(splits: Dict[str, List[List[Tuple[str, str]]]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, sentences in splits.items():
        text = "\n\n".join("\n".join(f"{tok}\t{tag}" for tok, tag in sent) for sent in sentences) + "\n"
        (out / f"{split}.txt").write_text(text, encoding="utf-8", newline="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mcrf" / "data" / "sample")
    parser.add_argument("--sizes", type=int, nargs=3, default=(600, 150, 150), metavar=("TRAIN", "DEV", "TEST"))
    args = parser.parse_args()
    write(generate(args.seed, args.sizes), args.out)


if __name__ == "__main__":
    main()
