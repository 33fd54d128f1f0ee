"""The released Lumos WebShop prompts (``--prompt_style original``), byte for byte.

The original evaluation drives the *unified* checkpoints with two in-context examples before the
task, in the ``<|user|>`` / ``<|assistant|>`` layout without a BOS token. Each example is written
here once, as data (subgoal, its execution result, its grounded actions); the functions below lay
them out the way the original evaluation does:

- planner: ``Task: <task>; Initial Environment Description: None.``, then per subgoal the
  subgoal, a blank line and ``The execution result for Subgoal k is <result>.``; two newlines
  after each example;
- grounder: the Search / FeatureRetrieve / Pick / Click instruction, ``Task: <task> `` (a space
  before the newline) and ``Subgoal to be grounded: ...`` turns; the actions of the examples'
  subgoals keep their own endings (one has no period);
- the live task is appended in the same layout, and the grounder's first answer is prefilled with
  ``R1 = ``.

Later turns (``The executed result ...`` without a period) are added by
:mod:`eval.webshop.original`.
"""

from __future__ import annotations

from dataclasses import dataclass

USER, ASSISTANT = "<|user|>\n", "<|assistant|>\n"
PLAN_INSTRUCTION = "Please provide a reasonable subgoal-based plan to solve the given task.\n"
GROUND_INSTRUCTION = (
    "Please ground the given subgoal to corresponding executable actions for solving the given task. "
    "The grounded actions must be the one in available action list.\n\n"
    "The available action list is 'Search', 'FeatureRetrieve', 'Pick' and 'Click'.\n"
    "Search(Query): Search related items according to the Query; "
    "FeatureRetrieve(Feature_list, Query): Select the most relevant features from Feature_list according to Query; "
    "Pick(Item_names, Item_features, Query): Pick the most relevant item from Item_names according to Query, "
    "Item_names and Item_features; Click(Item): Click the Item to check more information.\n\n")
GROUND_PREFILL = "R1 = "


@dataclass(frozen=True)
class ExampleSubgoal:
    subgoal: str
    result: str  # what the example's planner is told (a period is added)
    actions: str  # the example's grounding, ending as the original's example ends it


@dataclass(frozen=True)
class ShopExample:
    task: str
    subgoals: tuple[ExampleSubgoal, ...]


_SEARCH = "Subgoal 1: Search two relevant items and the product names according to the instruction."
_PICK = ("Subgoal 4: Pick up the most related one from the two relevant items according to the product names "
         "and their features.")
_BUY = "Subgoal 5: Buy this item by selecting its relevant features."


def _example(task: str, items: tuple[str, str], search_result: str, features: tuple[str, str], picked: str,
             buy_clicks: tuple[str, ...], third_period: str) -> ShopExample:
    """One example of the released prompt: search, the features of two items, pick one, buy it."""
    first, second = items
    return ShopExample(task, (
        ExampleSubgoal(_SEARCH, search_result, f"R1 = Search({task})."),
        ExampleSubgoal(f"Subgoal 2: Select the most relevant features of item {first}.", features[0],
                       f"R2 = Click({first}); R3 = FeatureRetrieve(R2, Query: {task})."),
        ExampleSubgoal(f"Subgoal 3: Select the most relevant features of item {second}.", features[1],
                       f"R4 = Click(< prev); R5 = Click({second}); R6 = FeatureRetrieve(R5, Query: {task})"
                       + third_period),
        ExampleSubgoal(_PICK, picked, f"R7 = Pick(Item_names: R1, Item_features: [R3, R6], Query: {task})."),
        ExampleSubgoal(_BUY, "Done", "; ".join(
            ["R8 = Click(< prev)", "R9 = Click(R7)",
             *(f"R{10 + k} = Click({value})" for k, value in enumerate(buy_clicks))]) + "."),
    ))


EXAMPLES = (
    _example(
        "Find me slim fit, loose fit women's tops, tees & blouses with long sleeve, short sleeve with color: "
        "a01#black, and size: large, and price lower than 50.00 dollars",
        ("b09s3bn15c", "b094q7b3ss"),
        "b09s3bn15c - Mens Linen Shirt,Men's Striped Shirts Casual Short Sleeve Button Down Shirts Regular Fit "
        "Hawaiian Shirts Beach Tees Tops ** b094q7b3ss - Women Cold Shoulder Tops, Summer Butterfly Print Shirts "
        "Fashion Casual Short Sleeve Plus-Size Tunic Top Tee and Blouse",
        ("short, casual, shoulder", "black, large, x-large"), "b094q7b3ss",
        ("black", "large", "x-large", "buy now"), third_period=""),
    _example(
        "Find me ready hang wall art with solid wood for living room with color: turtles and african american "
        "couple, and size: 16x20 inch, and price lower than 70.00 dollars",
        ("b099wh1rtm", "b092qqbw4y"),
        "b099wh1rtm - African American Wall Art Get Naked Fashion Black Girl And Bathtub Canvas Prints Gray Pink "
        "Painting Picture Modern Artwork For Bathroom Living Room Home Wall Decor Framed Ready To Hang 16x24 Inch "
        "** b092qqbw4y - Sencillez Canvas Wall Art Abstract Regalite Turquoise Marble Mixed Colors Blue Teal Gold "
        "Foil Digital Art Modern Art Bohemian Colorful Multicolor Ultra for Living Room Bedroom Office "
        "(20x30 inches)",
        ("turtles and african american couple, 16x20 inch", "art, 16x24 Inch"), "b099wh1rtm",
        ("turtles and african american couple", "16x20 inch", "buy now"), third_period="."),
)


def plan_task_turn(task: str) -> str:
    return f"{USER}{PLAN_INSTRUCTION}Task: {task.strip()}; Initial Environment Description: None.\n{ASSISTANT}"


def ground_task_turn(task: str, subgoal: str) -> str:
    return f"{USER}{GROUND_INSTRUCTION}Task: {task.strip()} \nSubgoal to be grounded: {subgoal}\n{ASSISTANT}"


def ground_subgoal_turn(subgoal: str) -> str:
    return f"\n\n{USER}Subgoal to be grounded: {subgoal}\n{ASSISTANT}"


def planner_examples() -> str:
    text = ""
    for example in EXAMPLES:
        text += plan_task_turn(example.task)
        for k, step in enumerate(example.subgoals, start=1):
            told = f"The execution result for Subgoal {k} is {step.result.strip('.')}."
            text += f"{step.subgoal}\n\n{USER}{told}\n{ASSISTANT}"
        text += "\n\n"
    return text


def grounder_examples() -> str:
    text = ""
    for example in EXAMPLES:
        first, *rest = example.subgoals
        text += ground_task_turn(example.task, first.subgoal) + first.actions
        for step in rest:
            text += ground_subgoal_turn(step.subgoal) + step.actions
        text += "\n\n"
    return text


def first_plan_prompt(task: str) -> str:
    """The planner's first prompt: the examples, then the task."""
    return planner_examples() + plan_task_turn(task)


def first_ground_prompt(task: str, subgoal: str) -> str:
    """The grounder's first prompt: the examples, the task and its first subgoal, ``R1 = `` prefilled."""
    return grounder_examples() + ground_task_turn(task, subgoal) + GROUND_PREFILL
