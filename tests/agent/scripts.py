"""Scripted planner/grounder/QA replies shared by the agent and evaluation tests (regex -> reply)."""

import json

MATHS_TASKS = [
    ("janet", "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. She sells the rest for $2 each. "
              "How much does she make?", "18"),
    ("robe", "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?", "3"),
]

MATHS_PLANNER = [
    # iterative: the newest user turn decides the reply (prompts are whole conversations, so match the end)
    (r"Subgoal 2 is 18\. Should we stop planning\?\n<\|assistant\|>\n$", "Yes, I will stop planning."),
    (r"Subgoal 2 is 3\. Should we stop planning\?\n<\|assistant\|>\n$", "Yes, I will stop planning."),
    (r"Subgoal 1 is 9\. Should we stop planning\?\n<\|assistant\|>\n$",
     "No, I will keep planning. Subgoal 2: Calculate how much she makes."),
    (r"Subgoal 1 is 1\. Should we stop planning\?\n<\|assistant\|>\n$",
     "No, I will keep planning. Subgoal 2: Calculate the total bolts."),
    (r"Task: Janet.*None\.\n<\|assistant\|>\n$", "Subgoal 1: Calculate how many eggs she sells."),
    (r"Task: A robe.*None\.\n<\|assistant\|>\n$", "Subgoal 1: Calculate the white fiber."),
]
MATHS_PLANNER_ONETIME = [
    (r"Task: Janet", "Subgoal 1: Calculate how many eggs she sells.; Subgoal 2: Calculate how much she makes."),
    (r"Task: A robe", "Subgoal 1: Calculate the white fiber.; Subgoal 2: Calculate the total bolts."),
]
MATHS_GROUNDER = [
    (r"Subgoals to be grounded: Subgoal 1: Calculate how many eggs", "R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)"),
    (r"Subgoals to be grounded: Subgoal 1: Calculate the white", "R1 = Calculator(2 / 2); R2 = Calculator(2 + R1)"),
    (r"Subgoal to be grounded: Subgoal 2: Calculate how much she makes\.\n<\|assistant\|>\n$", "R2 = Calculator(R1 * 2)"),
    (r"Subgoal to be grounded: Subgoal 2: Calculate the total bolts\.\n<\|assistant\|>\n$", "R2 = Calculator(2 + R1)"),
    (r"Subgoal to be grounded: Subgoal 1: Calculate how many eggs she sells\.\n<\|assistant\|>\n$",
     "R1 = Calculator(16 - 3 - 4)"),
    (r"Subgoal to be grounded: Subgoal 1: Calculate the white fiber\.\n<\|assistant\|>\n$", "R1 = Calculator(2 / 2)"),
]

QA_TASKS = [("q1", "Were Scott Derrickson and Ed Wood of the same nationality?", "yes")]
QA_CORPUS = [
    {"title": "Scott Derrickson", "text": "Scott Derrickson (born July 16, 1966) is an American director, "
                                          "screenwriter and producer."},
    {"title": "Scott Derrickson", "text": "He lives in Los Angeles, California."},
    {"title": "Ed Wood", "text": "Edward Davis Wood Jr. was an American filmmaker, actor and author."},
    {"title": "Ed Wood", "text": "In the 1950s he made low-budget films."},
    {"title": "Tokyo", "text": "Tokyo is the capital of Japan."},
]
_SUB1 = "Find the nationality of Scott Derrickson."
_SUB2 = "Find the nationality of Ed Wood."
_SUB3 = "Decide whether they are the same."
QA_PLANNER = [
    (r"Subgoal 3 is yes\. Should we stop planning\?\n<\|assistant\|>\n$", "Yes, I will stop planning."),
    (r"Subgoal 2 is American\. Should we stop planning\?\n<\|assistant\|>\n$", f"No, I will keep planning. Subgoal 3: {_SUB3}"),
    (r"Subgoal 1 is American\. Should we stop planning\?\n<\|assistant\|>\n$", f"No, I will keep planning. Subgoal 2: {_SUB2}"),
    (r"Task: Were Scott.*None\.\n<\|assistant\|>\n$", f"Subgoal 1: {_SUB1}"),
]
QA_PLANNER_ONETIME = [(r"Task: Were Scott", f"Subgoal 1: {_SUB1}; Subgoal 2: {_SUB2}; Subgoal 3: {_SUB3}")]
_G1 = ("R1 = KnowledgeQuery(Scott Derrickson); R2 = ParagraphRetrieve(R1, Query: What is the nationality of "
       "Scott Derrickson?); R3 = QA([R2], Question: What is the nationality of Scott Derrickson?)")
_G2 = ("R4 = KnowledgeQuery(Ed Wood); R5 = ParagraphRetrieve(R4, Query: What is the nationality of Ed Wood?); "
       "R6 = QA([R5], Question: What is the nationality of Ed Wood?)")
_G3 = "R7 = QA([R3, R6], Question: Are R3 and R6 the same nationality?)"
QA_GROUNDER = [
    (r"Subgoals to be grounded: ", f"{_G1}; {_G2}; {_G3}"),
    (rf"Subgoal 3: {_SUB3} The grounding could be based on the following results: The execution result for "
     r"Subgoal 1 is American The execution result for Subgoal 2 is American\n<\|assistant\|>\n$", _G3),
    (rf"Subgoal 2: {_SUB2} The grounding could be based on the following results: The execution result for "
     r"Subgoal 1 is American\n<\|assistant\|>\n$", _G2),
    (rf"Subgoal 1: {_SUB1}\n<\|assistant\|>\n$", _G1),
]
QA_MODEL = [
    (r"(?s)Context: Scott Derrickson \(born.*American director.*Question: What is the nationality of Scott", "American"),
    (r"(?s)Context: Edward Davis Wood Jr\. was an American.*Question: What is the nationality of Ed Wood", "American"),
    (r"Context: American American\nQuestion: Are American and American the same nationality\?", "yes"),
    (r"Question:", "No answer"),
]


def write_rules(path, rules) -> str:
    path.write_text(json.dumps({"rules": [list(rule) for rule in rules]}), encoding="utf-8")
    return f"scripted:{path}"


def write_corpus(path) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in QA_CORPUS), encoding="utf-8")
    return str(path)
