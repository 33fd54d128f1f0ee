"""The template language of the synthetic GSM8K-style word problems.

A problem is a chain of steps over a *state* (what the story is currently counting: items
someone holds, items in each box, money someone has, a cost, units of an activity). A
template reads the current state (or none, for a start template), draws fresh numbers,
and returns one calculator step plus the next state; it returns ``None`` when it does
not fit (say, a division that would not be exact), and the generator tries another.

Every step is one ``<<expr=value>>`` annotation over numbers from the question and
results of earlier steps, with exact, non-negative integer results.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Callable

# ---------------------------------------------------------------------------- vocabulary

_FEMALE = """
Maria Aisha Sofia Mei Priya Fatima Olivia Emma Ava Chloe Zoe Lily Grace Hannah Nora Leah Ruth
Naomi Yuki Sakura Hana Aiko Min-ji Ji-woo Lan Linh Mai Thu Ananya Kavya Diya Meera Lakshmi Sita
Amara Zainab Nia Imani Ayana Chidinma Ngozi Adaeze Folake Thandiwe Lerato Zanele Wanjiru Akosua
Abena Esi Yaa Amina Leila Yasmin Noor Layla Mariam Salma Hiba Rania Dina Elena Ana Lucia Carmen
Isabel Valentina Camila Gabriela Daniela Paula Marta Ines Beatriz Julia Clara Alice Chiara
Giulia Francesca Anna Greta Freya Ingrid Astrid Sigrid Maja Elsa Karin Olga Irina Natasha Svetlana
Katya Daria Zofia Agnieszka Ewa Petra Lenka Eszter Reka Ioana Mihaela Eleni Sophia Despina Ayla
Elif Zeynep Defne Selin Shira Tamar Noa Rivka Siobhan Aoife Niamh Fiona Isla Mia Ruby Harper
Stella Violet Hazel Ivy Rosa Luna Frida Ximena Guadalupe Paloma Maya Tala Kalani Leilani Moana
Aroha Mere Kiri Anjali Pooja Riya Sneha Farah Nadia Soraya Mahsa Parisa Ling Xiu Jing Fang Yan
Hui Rin Emi Keiko Bich Hoa Kim Sun-hee Eun-ji Wei Jasmine Bella Erin Megan Rachel Sarah Tina Janet
""".split()

_MALE = """
James Liam Noah Ethan Lucas Mason Logan Owen Caleb Henry Jack Leo Oscar Felix Hugo Arthur Samuel
Daniel David Joseph Michael Thomas Peter Paul Mark John Carlos Diego Mateo Santiago Javier Pablo
Miguel Luis Jorge Andres Rafael Tomas Marco Luca Matteo Giovanni Alessandro Pierre Louis Julien
Antoine Klaus Jonas Lukas Stefan Henrik Lars Erik Nils Anders Mikhail Ivan Dmitri Sergei Alexei
Pavel Piotr Tomasz Jakub Marek Ondrej Bence Andrei Nikos Yannis Kostas Emre Mehmet Burak Kerem
Omar Ahmed Youssef Karim Hassan Tariq Bilal Khalid Samir Rami Amir Reza Dariush Arash Kian Ravi
Arjun Rohan Vikram Rahul Aditya Sanjay Kiran Dev Nikhil Imran Farhan Hiro Kenji Takumi Haruto
Ren Sota Daiki Jin Min-jun Seo-jun Ji-ho Hyun Wei Jun Hao Ming Bo Chen Tuan Minh Duc Bao Kwame
Kofi Yaw Kwesi Chinedu Emeka Obinna Tunde Femi Sipho Thabo Bongani Jabari Juma Baraka Musa Idris
Moses Elijah Isaac Aaron Eli Ari Yosef Noam Sean Liam Cian Ronan Declan Angus Rhys Dylan Gareth
Tane Mikaere Koa Kai Manu Sione Mateus Joao Tiago Bruno Rui Nuno Santino Emilio Ignacio Benicio
Raul Hector Ezra Jamal Tyrone Marcus Andre Darius Malik Brian Kevin Greg Tony Frank Ray Chad
""".split()


@dataclass(frozen=True)
class Person:
    """Someone (or something) a problem talks about, with the words that refer to it."""

    name: str
    subj: str
    obj: str
    poss: str
    plural: bool = False
    named: bool = True  # a first name from the lists above (used for the held-out name split)

    @property
    def has(self) -> str:
        return "have" if self.plural else "has"

    @property
    def does(self) -> str:
        return "do" if self.plural else "does"

    @property
    def is_(self) -> str:
        return "are" if self.plural else "is"


def _dedupe(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


FEMALE_NAMES = _dedupe(_FEMALE)
MALE_NAMES = tuple(name for name in _dedupe(_MALE) if name not in set(FEMALE_NAMES))
ALL_PEOPLE: tuple[Person, ...] = tuple(
    [Person(name, "she", "her", "her") for name in FEMALE_NAMES]
    + [Person(name, "he", "him", "his") for name in MALE_NAMES]
)


def generic(name: str, plural: bool = False) -> Person:
    """A non-person owner ("each cousin", "the store"): always referred to by its phrase."""
    if plural:
        return Person(name, "they", "them", "their", plural=True, named=False)
    return Person(name, "it", "it", "its", named=False)


@dataclass(frozen=True)
class Item:
    one: str
    many: str
    box: str  # the container the item comes in
    boxes: str
    get: str  # how one gets some: base form ...
    got: str  # ... and past tense


_ITEMS = """
apple apples basket baskets pick picked
orange oranges crate crates pick picked
egg eggs carton cartons collect collected
cookie cookies tray trays bake baked
cupcake cupcakes box boxes bake baked
muffin muffins tray trays bake baked
bagel bagels bag bags bake baked
marble marbles bag bags win won
sticker stickers sheet sheets collect collected
pencil pencils pack packs buy bought
crayon crayons box boxes buy bought
book books shelf shelves buy bought
card cards deck decks collect collected
seashell seashells bucket buckets collect collected
flower flowers vase vases pick picked
rose roses bunch bunches pick picked
tomato tomatoes basket baskets pick picked
potato potatoes sack sacks harvest harvested
carrot carrots crate crates harvest harvested
strawberry strawberries basket baskets pick picked
lemon lemons bag bags pick picked
peach peaches crate crates pick picked
mango mangoes crate crates pick picked
candy candies jar jars buy bought
bead beads jar jars buy bought
button buttons jar jars collect collected
stamp stamps album albums collect collected
coin coins jar jars collect collected
balloon balloons pack packs buy bought
cup cups stack stacks buy bought
plate plates stack stacks buy bought
sandwich sandwiches platter platters make made
dumpling dumplings steamer steamers make made
taco tacos plate plates make made
donut donuts box boxes buy bought
brick bricks pallet pallets buy bought
tile tiles box boxes buy bought
nail nails box boxes buy bought
notebook notebooks pack packs buy bought
battery batteries pack packs buy bought
rock rocks bucket buckets collect collected
feather feathers bag bags collect collected
pinecone pinecones bag bags collect collected
ticket tickets booklet booklets buy bought
envelope envelopes box boxes buy bought
"""
ITEMS: tuple[Item, ...] = tuple(Item(*line.split()) for line in _ITEMS.strip().splitlines())


@dataclass(frozen=True)
class Activity:
    does: str  # "reads"
    do: str  # "read"
    did: str  # "read"
    one: str  # "page"
    many: str  # "pages"


_ACTIVITIES = """
reads read read page pages
runs run ran mile miles
swims swim swam lap laps
writes write wrote page pages
walks walk walked kilometer kilometers
cycles cycle cycled mile miles
knits knit knitted row rows
folds fold folded paper_crane paper_cranes
solves solve solved puzzle puzzles
bakes bake baked loaf loaves
plants plant planted tree trees
paints paint painted picture pictures
types type typed page pages
sews sew sewed button buttons
"""
ACTIVITIES: tuple[Activity, ...] = tuple(
    Activity(*(word.replace("_", " ") for word in line.split())) for line in _ACTIVITIES.strip().splitlines()
)

GROUPS = (
    ("friend", "friends"), ("classmate", "classmates"), ("cousin", "cousins"), ("neighbor", "neighbors"),
    ("teammate", "teammates"), ("student", "students"), ("child", "children"), ("guest", "guests"),
    ("sibling", "siblings"), ("coworker", "coworkers"),
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
JOBS = (
    "babysitting", "mowing lawns", "tutoring", "walking dogs", "at the cafe", "delivering newspapers",
    "washing cars", "at the bookstore", "at the bakery", "cleaning offices", "at the farm", "at the library",
)
THINGS_TO_BUY = (
    "a new book", "lunch", "a movie ticket", "groceries", "a video game", "school supplies", "a jacket",
    "a pair of shoes", "a board game", "a concert ticket", "art supplies", "a backpack", "a plant",
    "a bus pass", "a gift for a friend",
)
GIFTS = ("as a birthday gift", "in tips", "from a yard sale", "for helping a neighbor", "as a prize")
FEES = ("delivery", "shipping", "a gift bag", "gift wrapping", "a service fee")
SHOPS = ("the store", "the shop", "the market stall", "the warehouse", "the bakery")
FRACTIONS = ((2, "half"), (3, "a third"), (4, "a quarter"))

# ---------------------------------------------------------------------------- states and steps

HELD, EACH, MONEY, COST, UNITS, HOURS = "held", "each", "money", "cost", "units", "hours"
DONE = "done"  # a result nothing can follow (a difference between two people's counts)


@dataclass(frozen=True)
class State:
    """What the story counts after a step; ``value`` is the result of that step."""

    kind: str
    value: int
    owner: Person
    item: Item | None = None
    activity: Activity | None = None  # UNITS, HOURS: what is being done
    container: tuple[str, str] | None = None  # EACH: ("basket", "baskets") or ("cousin", "cousins")
    recipients: bool = False  # EACH: the groups are people who get a share, not boxes
    partner: tuple[Person, int] | None = None  # HELD after a comparison: who was compared, their count
    weekly: bool = False  # MONEY earned per week
    remaining: bool = False  # UNITS still to do towards a goal


@dataclass(frozen=True)
class Step:
    template: str
    fact: str  # sentence added to the question ("" when the step adds no number)
    ask: str  # the sub-question
    say: str  # the answer sentence, with "{calc}" where the calculation goes
    shown: str  # the calculation as written in the sentence: "16 - 3"
    expr: str  # the calculator expression: "16-3"
    value: int
    money: bool = False

    def answer_line(self) -> str:
        dollar = "$" if self.money else ""
        calc = f"{self.shown} = {dollar}<<{self.expr}={self.value}>>{self.value}"
        return f"{self.ask} ** {self.say.format(calc=calc)}"


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class NoFit(Exception):
    """The template cannot be used on this state with these numbers; the generator moves on."""


@dataclass
class Draft:
    """One problem under construction: random source, who and which numbers are taken."""

    rng: random.Random
    people: tuple[Person, ...]
    used_people: list[Person] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)  # numbers in the question, constants, results
    last_subject: Person | None = None

    def person(self) -> Person:
        while True:
            candidate = self.rng.choice(self.people)
            if all(candidate.name != used.name for used in self.used_people):
                self.used_people.append(candidate)
                return candidate

    def ref(self, who: Person) -> str:
        """How a sentence opens when it is about ``who``: a pronoun if it was the last subject."""
        word = who.subj if (who is self.last_subject and who.named) else who.name
        self.last_subject = who
        return cap(word)

    def num(self, low: int, high: int) -> int:
        """A fresh number spread over magnitudes (log-uniform in [low, high])."""
        if high < low:
            raise NoFit
        for _ in range(30):
            value = int(math.exp(self.rng.uniform(math.log(low), math.log(high + 1))))
            value = min(max(value, low), high)
            if value not in self.taken:
                self.taken.add(value)
                return value
        raise NoFit

    def divisor(self, value: int, low: int, high: int) -> int:
        """A fresh exact divisor of ``value`` in [low, high]."""
        options = [d for d in range(low, min(high, value // 2) + 1) if value % d == 0 and d not in self.taken]
        if not options:
            raise NoFit
        chosen = self.rng.choice(options)
        self.taken.add(chosen)
        return chosen

    def constant(self, value: int) -> None:
        """A number used in a calculation but written in words ("half", "twice")."""
        if value in self.taken:
            raise NoFit
        self.taken.add(value)

    def result(self, value: int) -> int:
        """Results stay distinct from every other number, so each is traceable to its step."""
        if value < 2 or value > 200_000 or value in self.taken:
            raise NoFit
        self.taken.add(value)
        return value

    def mul(self) -> str:
        return self.rng.choice(("x", "*"))


Template = Callable[[Draft, "State | None"], "tuple[Step, State]"]
START: dict[str, Template] = {}
CONTINUE: dict[str, dict[str, Template]] = {
    HELD: {}, EACH: {}, MONEY: {}, COST: {}, UNITS: {}, HOURS: {}, DONE: {},
}


def _start(name: str):
    def register(func: Template) -> Template:
        START[name] = func
        return func

    return register


def _on(kind: str, name: str):
    def register(func: Template) -> Template:
        CONTINUE[kind][name] = func
        return func

    return register


def _step(name: str, fact: str, ask: str, say: str, operands: list[int], op: str, value: int,
          draft: Draft, money: bool = False) -> Step:
    shown_op = draft.mul() if op == "*" else op
    shown = f" {shown_op} ".join(str(n) for n in operands)
    expr = op.join(str(n) for n in operands)
    return Step(name, fact, ask, say, shown, expr, draft.result(value), money)


def _pick(draft: Draft, options):
    return draft.rng.choice(options)


# ---------------------------------------------------------------------------- start templates


@_start("buy_containers")
def _buy_containers(d: Draft, _: State | None):
    p, it = d.person(), _pick(d, ITEMS)
    a, b = d.num(2, 40), d.num(2, 60)
    fact = _pick(d, (f"{p.name} bought {a} {it.boxes} of {it.many}. Each {it.box} has {b} {it.many}.",
                     f"{p.name} bought {a} {it.boxes} of {it.many}, and there are {b} {it.many} in each {it.box}."))
    d.last_subject = p
    step = _step("buy_containers", fact, f"How many {it.many} did {p.name} buy?",
                 f"{p.name} bought {{calc}} {it.many}.", [a, b], "*", a * b, d)
    return step, State(HELD, step.value, p, item=it)


@_start("gather_two_days")
def _gather_two_days(d: Draft, _: State | None):
    p, it = d.person(), _pick(d, ITEMS)
    day = d.rng.randrange(6)
    a, b = d.num(2, 400), d.num(2, 400)
    fact = f"{p.name} {it.got} {a} {it.many} on {DAYS[day]} and {b} {it.many} on {DAYS[day + 1]}."
    d.last_subject = p
    step = _step("gather_two_days", fact, f"How many {it.many} did {p.name} {it.get} in total?",
                 f"{p.name} {it.got} {{calc}} {it.many} in total.", [a, b], "+", a + b, d)
    return step, State(HELD, step.value, p, item=it)


@_start("gather_three_days")
def _gather_three_days(d: Draft, _: State | None):
    p, it = d.person(), _pick(d, ITEMS)
    day = d.rng.randrange(5)
    a, b, c = d.num(2, 300), d.num(2, 300), d.num(2, 300)
    fact = (f"{p.name} {it.got} {a} {it.many} on {DAYS[day]}, {b} on {DAYS[day + 1]} "
            f"and {c} on {DAYS[day + 2]}.")
    d.last_subject = p
    step = _step("gather_three_days", fact, f"How many {it.many} did {p.name} {it.get} over the three days?",
                 f"Over the three days {p.name} {it.got} {{calc}} {it.many}.", [a, b, c], "+", a + b + c, d)
    return step, State(HELD, step.value, p, item=it)


@_start("had_gave")
def _had_gave(d: Draft, _: State | None):
    p, q, it = d.person(), d.person(), _pick(d, ITEMS)
    a = d.num(10, 999)
    b = d.num(2, a - 2)
    fact = f"{p.name} had {a} {it.many}. {cap(p.subj)} gave {b} of them to {q.name}."
    d.last_subject = p
    step = _step("had_gave", fact, f"How many {it.many} does {p.name} have left?",
                 f"{p.name} has {{calc}} {it.many} left.", [a, b], "-", a - b, d)
    return step, State(HELD, step.value, p, item=it)


@_start("had_gave_two")
def _had_gave_two(d: Draft, _: State | None):
    p, q, r, it = d.person(), d.person(), d.person(), _pick(d, ITEMS)
    a = d.num(20, 999)
    b = d.num(2, a // 2 - 2)
    c = d.num(2, a - b - 2)
    fact = f"{p.name} had {a} {it.many}. {cap(p.subj)} gave {b} to {q.name} and {c} to {r.name}."
    d.last_subject = p
    step = _step("had_gave_two", fact, f"How many {it.many} does {p.name} have left?",
                 f"{p.name} has {{calc}} {it.many} left.", [a, b, c], "-", a - b - c, d)
    return step, State(HELD, step.value, p, item=it)


@_start("share_among")
def _share_among(d: Draft, _: State | None):
    p, it, group = d.person(), _pick(d, ITEMS), _pick(d, GROUPS)
    b = d.num(2, 12)
    share = d.num(2, 80)
    d.taken.discard(share)  # the share is the result, not a number of the question
    a = share * b
    if a in d.taken:
        raise NoFit
    d.taken.add(a)
    fact = f"{p.name} has {a} {it.many} and shares them equally among {b} {group[1]}."
    d.last_subject = p
    step = _step("share_among", fact, f"How many {it.many} does each {group[0]} get?",
                 f"Each {group[0]} gets {{calc}} {it.many}.", [a, b], "/", share, d)
    return step, State(EACH, step.value, p, item=it, container=group, recipients=True)


Relation = Callable[[Draft, int], "tuple[str, list[int], str, int]"]  # count -> phrase, operands, op, value


def _compare(d: Draft, name: str, low: int, high: int, relation: Relation):
    p, q, it = d.person(), d.person(), _pick(d, ITEMS)
    a = d.num(low, high)
    phrase, operands, op, value = relation(d, a)
    fact = f"{p.name} has {a} {it.many}. {q.name} has {phrase.format(many=it.many, who=p.name)}."
    d.last_subject = q
    step = _step(name, fact, f"How many {it.many} does {q.name} have?",
                 f"{q.name} has {{calc}} {it.many}.", operands, op, value, d)
    return step, State(HELD, step.value, q, item=it, partner=(p, a))


def _more(d: Draft, a: int):
    b = d.num(2, 300)
    return f"{b} more {{many}} than {{who}}", [a, b], "+", a + b


def _fewer(d: Draft, a: int):
    b = d.num(2, a - 2)
    return f"{b} fewer {{many}} than {{who}}", [a, b], "-", a - b


def _times(d: Draft, a: int):
    b = d.rng.randint(2, 9)
    if b == 2:
        d.constant(2)
        return "twice as many {many} as {who}", [a, 2], "*", a * 2
    if b in d.taken:
        raise NoFit
    d.taken.add(b)
    return f"{b} times as many {{many}} as {{who}}", [a, b], "*", a * b


def _fraction(d: Draft, a: int):
    k, word = _pick(d, FRACTIONS)
    if a % k:
        raise NoFit
    d.constant(k)
    return f"{word} as many {{many}} as {{who}}", [a, k], "/", a // k


@_start("compare_more")
def _compare_more(d: Draft, _: State | None):
    return _compare(d, "compare_more", 2, 500, _more)


@_start("compare_fewer")
def _compare_fewer(d: Draft, _: State | None):
    return _compare(d, "compare_fewer", 10, 999, _fewer)


@_start("compare_times")
def _compare_times(d: Draft, _: State | None):
    return _compare(d, "compare_times", 3, 200, _times)


@_start("compare_fraction")
def _compare_fraction(d: Draft, _: State | None):
    return _compare(d, "compare_fraction", 6, 999, _fraction)


@_start("hourly_wage")
def _hourly_wage(d: Draft, _: State | None):
    p, job = d.person(), _pick(d, JOBS)
    a, b = d.num(5, 60), d.num(2, 60)
    fact = f"{p.name} earns ${a} an hour {job}. This week {p.subj} worked {b} hours."
    d.last_subject = p
    step = _step("hourly_wage", fact, f"How much money did {p.name} earn this week?",
                 f"{p.name} earned {{calc}} this week.", [a, b], "*", a * b, d, money=True)
    return step, State(MONEY, step.value, p, weekly=True)


@_start("buy_at_price")
def _buy_at_price(d: Draft, _: State | None):
    p, it = d.person(), _pick(d, ITEMS)
    a, b = d.num(2, 50), d.num(2, 99)
    fact = f"{p.name} bought {a} {it.many} for ${b} each."
    d.last_subject = p
    step = _step("buy_at_price", fact, f"How much did {p.name} spend on the {it.many}?",
                 f"{p.name} spent {{calc}} on the {it.many}.", [a, b], "*", a * b, d, money=True)
    return step, State(COST, step.value, p, item=it)


@_start("weekly_savings")
def _weekly_savings(d: Draft, _: State | None):
    p = d.person()
    a, b = d.num(2, 200), d.num(2, 52)
    fact = f"{p.name} saves ${a} every week for {b} weeks."
    d.last_subject = p
    step = _step("weekly_savings", fact, f"How much money does {p.name} save?",
                 f"{p.name} saves {{calc}}.", [a, b], "*", a * b, d, money=True)
    return step, State(MONEY, step.value, p)


@_start("daily_rate")
def _daily_rate(d: Draft, _: State | None):
    p, act = d.person(), _pick(d, ACTIVITIES)
    a, b = d.num(2, 120), d.num(2, 30)
    fact = f"{p.name} {act.does} {a} {act.many} every day for {b} days."
    d.last_subject = p
    step = _step("daily_rate", fact, f"How many {act.many} does {p.name} {act.do} in {b} days?",
                 f"{p.name} {act.does} {{calc}} {act.many} in {b} days.", [a, b], "*", a * b, d)
    return step, State(UNITS, step.value, p, activity=act)


# ---------------------------------------------------------------------------- items someone holds


@_on(HELD, "found_more")
def _found_more(d: Draft, s: State):
    o, it = s.owner, s.item
    x = d.num(2, 300)
    fact = f"{d.ref(o)} then {it.got if o.named else 'got'} {x} more {it.many}."
    step = _step("found_more", fact, f"How many {it.many} {o.does} {o.name} have now?",
                 f"{cap(o.name)} now {o.has} {{calc}} {it.many}.", [s.value, x], "+", s.value + x, d)
    return step, replace(s, value=step.value, partner=None)


@_on(HELD, "received_from")
def _received_from(d: Draft, s: State):
    o, it, q = s.owner, s.item, d.person()
    x = d.num(2, 300)
    fact = f"{q.name} gave {o.obj if o.named else o.name} {x} more {it.many}."
    d.last_subject = q
    step = _step("received_from", fact, f"How many {it.many} {o.does} {o.name} have after {q.name}'s gift?",
                 f"{cap(o.name)} now {o.has} {{calc}} {it.many}.", [s.value, x], "+", s.value + x, d)
    return step, replace(s, value=step.value, partner=None)


@_on(HELD, "gave_to")
def _gave_to(d: Draft, s: State):
    o, it = s.owner, s.item
    q = d.person()
    x = d.num(2, s.value - 2)
    fact = f"{d.ref(o)} gave {x} {it.many} to {q.name}."
    step = _step("gave_to", fact, f"How many {it.many} {o.does} {o.name} have after giving some to {q.name}?",
                 f"{cap(o.name)} {o.has} {{calc}} {it.many} left.", [s.value, x], "-", s.value - x, d)
    return step, replace(s, value=step.value, partner=None)


@_on(HELD, "lost_some")
def _lost_some(d: Draft, s: State):
    o, it = s.owner, s.item
    x = d.num(2, s.value - 2)
    verb, doing = _pick(d, (("lost", "losing"), ("sold", "selling"), ("gave away", "giving away"), ("used", "using")))
    fact = f"{d.ref(o)} {verb} {x} of the {it.many}."
    step = _step("lost_some", fact, f"How many {it.many} {o.does} {o.name} have after {doing} some?",
                 f"{cap(o.name)} {o.has} {{calc}} {it.many} left.", [s.value, x], "-", s.value - x, d)
    return step, replace(s, value=step.value, partner=None)


@_on(HELD, "pack_into")
def _pack_into(d: Draft, s: State):
    o, it = s.owner, s.item
    x = d.divisor(s.value, 2, 50)
    fact = f"{d.ref(o)} put the {it.many} equally into {x} {it.boxes}."
    step = _step("pack_into", fact, f"How many {it.many} are in each {it.box}?",
                 f"There are {{calc}} {it.many} in each {it.box}.", [s.value, x], "/", s.value // x, d)
    return step, State(EACH, step.value, o, item=it, container=(it.box, it.boxes))


@_on(HELD, "sell_each")
def _sell_each(d: Draft, s: State):
    o, it = s.owner, s.item
    x = d.num(2, 20)
    fact = f"{d.ref(o)} sold all the {it.many} for ${x} each."
    step = _step("sell_each", fact, f"How much money did {o.name} make?",
                 f"{cap(o.name)} made {{calc}}.", [s.value, x], "*", s.value * x, d, money=True)
    return step, State(MONEY, step.value, o)


def _friend(d: Draft, s: State, name: str, relation: Relation) -> tuple[Step, State]:
    o, it, q = s.owner, s.item, d.person()
    phrase, operands, op, value = relation(d, s.value)
    fact = f"{q.name} has {phrase.format(many=it.many, who=o.name)}."
    d.last_subject = q
    step = _step(name, fact, f"How many {it.many} does {q.name} have?",
                 f"{q.name} has {{calc}} {it.many}.", operands, op, value, d)
    return step, State(HELD, step.value, q, item=it, partner=(o, s.value))


@_on(HELD, "friend_more")
def _friend_more(d: Draft, s: State):
    if not s.owner.named:
        raise NoFit
    return _friend(d, s, "friend_more", _more)


@_on(HELD, "friend_fewer")
def _friend_fewer(d: Draft, s: State):
    if not s.owner.named:
        raise NoFit
    return _friend(d, s, "friend_fewer", _fewer)


@_on(HELD, "friend_times")
def _friend_times(d: Draft, s: State):
    if not s.owner.named:
        raise NoFit
    return _friend(d, s, "friend_times", _times)


@_on(HELD, "friend_fraction")
def _friend_fraction(d: Draft, s: State):
    if not s.owner.named:
        raise NoFit
    return _friend(d, s, "friend_fraction", _fraction)


@_on(HELD, "together")
def _together(d: Draft, s: State):
    if s.partner is None:
        raise NoFit
    other, count = s.partner
    both = generic(f"{other.name} and {s.owner.name}", plural=True)
    it = s.item
    step = _step("together", "", f"How many {it.many} do {both.name} have together?",
                 f"Together they have {{calc}} {it.many}.", [count, s.value], "+", count + s.value, d)
    return step, State(HELD, step.value, both, item=it)


@_on(HELD, "how_many_more")
def _how_many_more(d: Draft, s: State):
    if s.partner is None:
        raise NoFit
    other, count = s.partner
    it, o = s.item, s.owner
    more, fewer = (o, other) if s.value > count else (other, o)
    big, small = max(s.value, count), min(s.value, count)
    step = _step("how_many_more", "", f"How many more {it.many} does {more.name} have than {fewer.name}?",
                 f"{more.name} has {{calc}} more {it.many} than {fewer.name}.", [big, small], "-", big - small, d)
    return step, State(DONE, step.value, more, item=it)


# ---------------------------------------------------------------------------- items in each box / share


@_on(EACH, "add_each")
def _add_each(d: Draft, s: State):
    o, it, one = s.owner, s.item, s.container[0]
    x = d.num(2, 100)
    if s.recipients:
        fact = f"Later, {o.name} gave each {one} {x} more {it.many}."
        ask = f"How many {it.many} does each {one} have now?"
        say = f"Each {one} now has {{calc}} {it.many}."
    else:
        fact = f"{d.ref(o)} then added {x} more {it.many} to each {one}."
        ask = f"How many {it.many} are in each {one} now?"
        say = f"Each {one} now has {{calc}} {it.many}."
    step = _step("add_each", fact, ask, say, [s.value, x], "+", s.value + x, d)
    return step, replace(s, value=step.value)


@_on(EACH, "remove_each")
def _remove_each(d: Draft, s: State):
    o, it, one = s.owner, s.item, s.container[0]
    x = d.num(2, s.value - 2)
    if s.recipients:
        fact = f"Each {one} gave away {x} of their {it.many}."
        ask = f"How many {it.many} does each {one} have left?"
        say = f"Each {one} has {{calc}} {it.many} left."
    else:
        fact = f"{d.ref(o)} then took {x} {it.many} out of each {one}."
        ask = f"How many {it.many} are left in each {one}?"
        say = f"Each {one} has {{calc}} {it.many} left."
    step = _step("remove_each", fact, ask, say, [s.value, x], "-", s.value - x, d)
    return step, replace(s, value=step.value)


@_on(EACH, "box_price")
def _box_price(d: Draft, s: State):
    if s.recipients:
        raise NoFit
    it, (one, _) = s.item, s.container
    q = d.person()
    x = d.num(2, 20)
    fact = f"{q.name} buys one {one} of {it.many}, and each {it.one} costs ${x}."
    d.last_subject = q
    step = _step("box_price", fact, f"How much does {q.name} pay for the {one}?",
                 f"{q.name} pays {{calc}} for the {one}.", [s.value, x], "*", s.value * x, d, money=True)
    return step, State(COST, step.value, q, item=it)


@_on(EACH, "boxes_in_stock")
def _boxes_in_stock(d: Draft, s: State):
    if s.recipients:
        raise NoFit
    it, (_, many) = s.item, s.container
    shop = generic(_pick(d, SHOPS))
    x = d.num(2, 40)
    fact = f"{cap(shop.name)} has {x} {many} like this."
    d.last_subject = shop
    step = _step("boxes_in_stock", fact, f"How many {it.many} {shop.does} {shop.name} have in {x} {many}?",
                 f"{cap(shop.name)} has {{calc}} {it.many}.", [s.value, x], "*", s.value * x, d)
    return step, State(HELD, step.value, shop, item=it)


# ---------------------------------------------------------------------------- money someone has


@_on(MONEY, "spend")
def _spend(d: Draft, s: State):
    o = s.owner
    x = d.num(2, s.value - 2)
    fact = f"{d.ref(o)} spent ${x} on {_pick(d, THINGS_TO_BUY)}."
    step = _step("spend", fact, f"How much money {o.does} {o.name} have left?",
                 f"{cap(o.name)} {o.has} {{calc}} left.", [s.value, x], "-", s.value - x, d, money=True)
    return step, State(MONEY, step.value, o)


@_on(MONEY, "earn_extra")
def _earn_extra(d: Draft, s: State):
    o = s.owner
    x = d.num(2, 200)
    fact = f"{d.ref(o)} also got ${x} {_pick(d, GIFTS)}."
    step = _step("earn_extra", fact, f"How much money {o.does} {o.name} have now?",
                 f"{cap(o.name)} now {o.has} {{calc}}.", [s.value, x], "+", s.value + x, d, money=True)
    return step, State(MONEY, step.value, o)


@_on(MONEY, "split_money")
def _split_money(d: Draft, s: State):
    o = s.owner
    if not o.named:
        raise NoFit
    one, many = _pick(d, GROUPS)
    x = d.divisor(s.value, 2, 12)
    fact = f"{d.ref(o)} split the money equally among {x} {many}."
    step = _step("split_money", fact, f"How much money does each {one} get?",
                 f"Each {one} gets {{calc}}.", [s.value, x], "/", s.value // x, d, money=True)
    return step, State(MONEY, step.value, generic(f"each {one}"))


@_on(MONEY, "buy_with")
def _buy_with(d: Draft, s: State):
    o = s.owner
    it = _pick(d, ITEMS)
    x = d.divisor(s.value, 2, 200)
    fact = f"{d.ref(o)} used all of the money to buy {it.many} that cost ${x} each."
    step = _step("buy_with", fact, f"How many {it.many} can {o.name} buy?",
                 f"{cap(o.name)} can buy {{calc}} {it.many}.", [s.value, x], "/", s.value // x, d)
    return step, State(HELD, step.value, o, item=it)


@_on(MONEY, "weeks_of_pay")
def _weeks_of_pay(d: Draft, s: State):
    if not s.weekly:
        raise NoFit
    o = s.owner
    x = d.num(2, 52)
    fact = f"{d.ref(o)} works the same hours every week for {x} weeks."
    step = _step("weeks_of_pay", fact, f"How much money does {o.name} earn in {x} weeks?",
                 f"In {x} weeks {o.name} earns {{calc}}.", [s.value, x], "*", s.value * x, d, money=True)
    return step, State(MONEY, step.value, o)


# ---------------------------------------------------------------------------- a cost someone pays


@_on(COST, "change_from")
def _change_from(d: Draft, s: State):
    o = s.owner
    unit = _pick(d, (5, 10, 20, 50, 100))
    bill = (s.value // unit + 1 + d.rng.randrange(3)) * unit
    if bill in d.taken:
        raise NoFit
    d.taken.add(bill)
    fact = f"{d.ref(o)} paid with ${bill}."
    step = _step("change_from", fact, f"How much change did {o.name} get?",
                 f"{cap(o.name)} got {{calc}} in change.", [bill, s.value], "-", bill - s.value, d, money=True)
    return step, State(MONEY, step.value, o)


@_on(COST, "extra_fee")
def _extra_fee(d: Draft, s: State):
    o = s.owner
    x = d.num(2, 100)
    fact = f"{d.ref(o)} also paid ${x} for {_pick(d, FEES)}."
    step = _step("extra_fee", fact, f"How much did {o.name} pay in total?",
                 f"{cap(o.name)} paid {{calc}} in total.", [s.value, x], "+", s.value + x, d, money=True)
    return step, State(COST, step.value, o, item=s.item)


@_on(COST, "split_cost")
def _split_cost(d: Draft, s: State):
    if not s.owner.named:
        raise NoFit
    one, many = _pick(d, GROUPS[:6])
    x = d.divisor(s.value, 2, 10)
    fact = f"The cost is shared equally by {x} {many}."
    step = _step("split_cost", fact, f"How much does each {one} pay?",
                 f"Each {one} pays {{calc}}.", [s.value, x], "/", s.value // x, d, money=True)
    return step, State(COST, step.value, generic(f"each {one}"), item=s.item)


# ---------------------------------------------------------------------------- units of an activity


@_on(UNITS, "extra_units")
def _extra_units(d: Draft, s: State):
    if s.remaining:
        raise NoFit
    o, act = s.owner, s.activity
    x = d.num(2, 100)
    fact = f"On the last day, {o.subj} {act.did} {x} extra {act.many}."
    d.last_subject = o
    step = _step("extra_units", fact, f"How many {act.many} did {o.name} {act.do} altogether?",
                 f"{o.name} {act.did} {{calc}} {act.many} altogether.", [s.value, x], "+", s.value + x, d)
    return step, replace(s, value=step.value)


@_on(UNITS, "goal_left")
def _goal_left(d: Draft, s: State):
    if s.remaining:
        raise NoFit
    o, act = s.owner, s.activity
    x = d.num(s.value + 2, s.value * 3)
    fact = f"{d.ref(o)} wants to reach {x} {act.many}."
    step = _step("goal_left", fact, f"How many more {act.many} does {o.name} need to {act.do}?",
                 f"{o.name} needs to {act.do} {{calc}} more {act.many}.", [x, s.value], "-", x - s.value, d)
    return step, replace(s, value=step.value, remaining=True)


@_on(UNITS, "pay_per_unit")
def _pay_per_unit(d: Draft, s: State):
    o, act = s.owner, s.activity
    x = d.num(2, 15)
    if s.remaining:
        fact = f"{d.ref(o)} will earn ${x} for every {act.one}."
        ask, say = f"How much money will {o.name} earn for them?", f"{o.name} will earn {{calc}}."
    else:
        fact = f"{d.ref(o)} earns ${x} for every {act.one}."
        ask, say = f"How much money does {o.name} earn?", f"{o.name} earns {{calc}}."
    step = _step("pay_per_unit", fact, ask, say, [s.value, x], "*", s.value * x, d, money=True)
    return step, State(MONEY, step.value, o)


# ---------------------------------------------------------------------------- hours of work


@_start("hours_needed")
def _hours_needed(d: Draft, _: State | None):
    p, act = d.person(), _pick(d, ACTIVITIES)
    rate = d.num(2, 60)
    hours = d.num(2, 40)
    d.taken.discard(hours)  # the hours are the result, not a number of the question
    total = rate * hours
    if total in d.taken:
        raise NoFit
    d.taken.add(total)
    fact = f"{p.name} has to {act.do} {total} {act.many} and can {act.do} {rate} {act.many} an hour."
    d.last_subject = p
    step = _step("hours_needed", fact, f"How many hours will it take {p.name}?",
                 f"It will take {p.name} {{calc}} hours.", [total, rate], "/", hours, d)
    return step, State(HOURS, step.value, p, activity=act)


@_start("hours_per_week")
def _hours_per_week(d: Draft, _: State | None):
    p, act = d.person(), _pick(d, ACTIVITIES)
    a, b = d.num(2, 12), d.num(2, 7)
    fact = f"{p.name} {act.does} for {a} hours a day, {b} days a week."
    d.last_subject = p
    step = _step("hours_per_week", fact, f"How many hours a week does {p.name} {act.do}?",
                 f"{p.name} {act.does} {{calc}} hours a week.", [a, b], "*", a * b, d)
    return step, State(HOURS, step.value, p, activity=act)


@_on(HOURS, "extra_hours")
def _extra_hours(d: Draft, s: State):
    o = s.owner
    x = d.num(2, 30)
    fact = f"{d.ref(o)} also spends {x} hours getting ready."
    step = _step("extra_hours", fact, f"How many hours does {o.name} spend in total?",
                 f"{o.name} spends {{calc}} hours in total.", [s.value, x], "+", s.value + x, d)
    return step, replace(s, value=step.value)


@_on(HOURS, "hourly_pay")
def _hourly_pay(d: Draft, s: State):
    o = s.owner
    x = d.num(5, 50)
    fact = f"{d.ref(o)} is paid ${x} for every hour."
    step = _step("hourly_pay", fact, f"How much money does {o.name} earn?",
                 f"{o.name} earns {{calc}}.", [s.value, x], "*", s.value * x, d, money=True)
    return step, State(MONEY, step.value, o)


# Templates that fit only rare states are tried first more often, so that every template
# shows up often enough to be learnt.
WEIGHTS: dict[str, float] = {
    "together": 3.0, "how_many_more": 6.0, "box_price": 3.0, "boxes_in_stock": 3.0, "weeks_of_pay": 3.0,
    "split_cost": 2.0, "extra_units": 2.0, "friend_fraction": 2.0,
}

ALL_TEMPLATES: tuple[str, ...] = tuple(START) + tuple(name for kind in CONTINUE.values() for name in kind)
