"""Writes the two small benchmarks of config/smollm2.yaml, laid out as the hub lays out the
datasets they stand for (questions written for siaflow; run from the repository root):

    resources/benchmarks/gsm8k-mini/main/test-00000-of-00001.parquet           (openai/gsm8k, main)
    resources/benchmarks/arc-mini/ARC-Challenge/test-00000-of-00001.parquet   (allenai/ai2_arc)

GSM8K rows have `question` and `answer` (worked solution ending in "#### N"); ARC rows have `id`,
`question`, `choices` {text, label} and `answerKey`, with some numeric labels and 3 or 5 options
as in the real set. The parquet files are committed; rerun this script after editing a question.
"""

from pathlib import Path

import polars as pl

GSM8K = [
    ("Tom has 3 apples and buys 12 more. How many apples does he have now?", "3 + 12 = 15", 15),
    ("A box holds 6 eggs. How many eggs are in 4 boxes?", "6 * 4 = 24", 24),
    ("Sara had 20 stickers and gave 8 to her friend. How many stickers does she have left?", "20 - 8 = 12", 12),
    ("A pencil costs $2. How much do 5 pencils cost in dollars?", "2 * 5 = 10", 10),
    ("There are 18 cookies shared equally among 3 children. How many cookies does each child get?", "18 / 3 = 6", 6),
    ("Ben walks 4 miles on Monday and 7 miles on Tuesday. How many miles does he walk in all?", "4 + 7 = 11", 11),
    ("A farmer has 9 cows and 14 sheep. How many animals does he have?", "9 + 14 = 23", 23),
    ("Lily reads 10 pages a day. How many pages does she read in 7 days?", "10 * 7 = 70", 70),
    ("A bus has 40 seats and 25 are taken. How many seats are empty?", "40 - 25 = 15", 15),
    ("Each bag has 5 marbles. Jo has 6 bags. How many marbles does Jo have?", "5 * 6 = 30", 30),
    ("A shirt costs $15 and a hat costs $7. How much do they cost together in dollars?", "15 + 7 = 22", 22),
    ("Mia had 50 cents and spent 35 cents. How many cents does she have now?", "50 - 35 = 15", 15),
    ("There are 7 days in a week. How many days are in 3 weeks?", "7 * 3 = 21", 21),
    ("A class has 12 girls and 13 boys. How many students are in the class?", "12 + 13 = 25", 25),
    ("Sam has 36 cards and puts them in 4 equal piles. How many cards are in each pile?", "36 / 4 = 9", 9),
    ("A store sold 8 cakes in the morning and 9 in the afternoon. How many cakes did it sell?", "8 + 9 = 17", 17),
    ("Anna buys 3 packs of 8 pens. How many pens does she buy?", "3 * 8 = 24", 24),
    ("A rope is 30 meters long. Ali cuts off 12 meters. How long is the rope now in meters?", "30 - 12 = 18", 18),
    ("Jack has 5 fish and buys 3 more, then 2 die. How many fish does he have?", "5 + 3 = 8. 8 - 2 = 6", 6),
    ("A garden has 4 rows of 5 flowers. How many flowers are there?", "4 * 5 = 20", 20),
    ("Nina saves $4 each week. How many dollars does she save in 6 weeks?", "4 * 6 = 24", 24),
    ("A train has 9 cars with 10 people in each car. How many people are on the train?", "9 * 10 = 90", 90),
    ("Tim had 45 balloons and 17 popped. How many balloons are left?", "45 - 17 = 28", 28),
    ("A pizza has 8 slices. Two friends eat 3 slices each. How many slices are left?", "3 + 3 = 6. 8 - 6 = 2", 2),
]

ARC = [
    ("Which of these is a liquid at room temperature?", ["iron", "water", "salt", "sand"], "B"),
    ("Which planet is closest to the Sun?", ["Mars", "Venus", "Mercury", "Earth"], "C"),
    ("What do plants need to make their own food?", ["sunlight", "plastic", "noise", "sand"], "A"),
    ("Which tool is used to measure temperature?", ["ruler", "scale", "thermometer", "clock"], "C"),
    ("What is the main gas that animals breathe in to live?", ["oxygen", "helium", "neon", "carbon monoxide"], "A"),
    ("Which of these animals is a mammal?", ["shark", "frog", "whale", "lizard"], "C"),
    ("What happens to water when it freezes?", ["it boils", "it becomes ice", "it becomes gas", "it disappears"], "B"),
    ("Which force pulls objects toward the Earth?", ["magnetism", "friction", "gravity"], "C"),
    ("Which part of a plant takes in water from the soil?", ["leaves", "roots", "flowers", "fruit"], "B"),
    ("What is the Earth's natural satellite?", ["the Sun", "Mars", "the Moon", "a comet"], "C"),
    ("Which of these is a source of light?", ["a mirror", "the Sun", "a rock", "a window"], "B"),
    ("What do we call an animal that eats only plants?", ["carnivore", "herbivore", "predator", "scavenger"], "B"),
    ("Which material is a good conductor of electricity?", ["copper", "wood", "rubber", "glass"], "A"),
    ("How many legs does an insect have?", ["four", "six", "eight", "ten"], "B"),
    ("Which season is usually the coldest?", ["summer", "spring", "winter", "autumn"], "C"),
    ("What is needed for a fire to burn?", ["oxygen", "ice", "water", "sand", "snow"], "A"),
    ("Which of these is a renewable energy source?", ["coal", "oil", "wind", "natural gas"], "C"),
    ("What organ pumps blood through the body?", ["the lungs", "the heart", "the stomach", "the brain"], "B"),
    ("Which state of matter has a fixed shape?", ["solid", "liquid", "gas"], "A"),
    (
        "What causes day and night on Earth?",
        ["the Moon's orbit", "the Earth's rotation", "the clouds", "the tides"],
        "B",
    ),
    ("Which of these is a young frog?", ["a tadpole", "a calf", "a cub", "a chick"], "A"),
    ("Which sense do we use to hear?", ["sight", "touch", "hearing", "smell"], "C"),
    ("What do bees collect from flowers?", ["nectar", "sand", "water", "leaves"], "A"),
    ("Which object would a magnet pick up?", ["a paper clip", "a rubber band", "a wooden spoon", "a cotton ball"], "A"),
]
NUMERIC_LABELS = {1, 8, 15}  # rows whose labels are 1, 2, 3, ... as some real ARC rows are


def gsm8k() -> pl.DataFrame:
    return pl.DataFrame({"question": [q for q, _, _ in GSM8K], "answer": [f"{work}\n#### {a}" for _, work, a in GSM8K]})


def arc() -> pl.DataFrame:
    rows = []
    for i, (q, options, key) in enumerate(ARC):
        labels = [str(n + 1) for n in range(len(options))] if i in NUMERIC_LABELS else list("ABCDE"[: len(options)])
        rows.append(
            {
                "id": f"siaflow-arc-{i:03d}",
                "question": q,
                "choices": {"text": options, "label": labels},
                "answerKey": labels["ABCDE".index(key)],
            }
        )
    return pl.DataFrame(rows)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for df, rel in [
        (gsm8k(), "gsm8k-mini/main/test-00000-of-00001.parquet"),
        (arc(), "arc-mini/ARC-Challenge/test-00000-of-00001.parquet"),
    ]:
        out = here / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(out)
        print(f"{out}: {df.height} rows")
