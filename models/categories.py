"""The goods-category table: which ImageNet-1k classes count as which counterfeit-prone goods category.

A camera photo gets a category out of the box by summing the ImageNet class probabilities of each
category's classes (`category_probs`). The table is written against the standard ImageNet-1k label
order; `IMAGENET_LABELS_SHA256` pins that order so a model whose labels differ is refused at load
instead of silently mapping "running shoe" to the wrong category.

| category | ImageNet classes (index: name) |
|---|---|
| footwear_clothing | garments, hats, ties, swimwear, shoes, socks, mittens (399 abaya ... 906 Windsor tie),
  615 knee pad and 788 shoe shop (close photos of sneakers often land there) |
| bags_leather | 414 backpack, 464 buckle, 597 holster, 636 mailbag, 748 purse, 893 wallet |
| watches_jewellery | clocks and watches (ImageNet has no "wristwatch"; wristwatches land in analog
  clock, digital watch, stopwatch, magnetic compass), 679 necklace, 584 hair slide, 836/837 sunglasses |
| electronics | phones, computers and peripherals, audio/video, cameras, small appliances |
| cosmetics | 551 face powder, 585 hair spray, 629 lipstick, 631 lotion, 711 perfume, 804 soap dispenser,
  838 sunscreen, 903 wig |
| medicines_medical | 419 Band Aid, 523 crutch, 570 gas mask, 648 medicine chest, 678 neck brace, 691 oxygen
  mask, 712 Petri dish, 720 pill bottle, 823 stethoscope, 830 stretcher, 840 swab, 845 syringe |
| food | 924-957, 959-969 (dishes, fruit, vegetables, drinks), bottled drinks, food shops |
| children_toys | baby goods (bassinet, crib, diaper, nipple, bib), toys (teddy, jigsaw, pinwheel), balls |
| auto_parts | 475 car mirror, 479 car wheel, 535 disk brake, 581 grille, 685 odometer, 686 oil filter,
  785 seat belt |
| printed_matter | 446 binder, 454 bookshop, 549 envelope, 624 library, 681 notebook, 916-918, 921, 922 |
| agricultural_inputs | 595 harvester, 730 plow, 856 thresher, 958 hay: farm machinery and fodder only.
  Seeds, fertilisers and pesticides, the inputs that are most counterfeited, have no ImageNet class:
  a photo of a seed packet or a fertiliser sack lands in `other` or `printed_matter` |
| decoration_materials | 435 bathtub, 489 chainlink fence, 539 doormat, 587 hammer, 619 lampshade, 696
  paintbrush, 716 picket fence, 726 carpenter's plane, 784 screwdriver, 794 shower curtain, 799
  sliding door, 858 tile roof, 861 toilet seat, 896 washbasin, 904 window screen, 905 window shade,
  912 worm fence. Paint tins, tiles, boards and wallpaper have no class of their own |
| explosive_precursors | none: ImageNet has no class for chemicals, and a photo shows only a bottle, a
  sack or a drum. The category exists for declared contents, per-category policy and heads trained
  on it; the out-of-the-box mapping never gives it |
| other | every class not listed above (animals, scenes, vehicles, furniture ...) |

The categories follow the goods the State Council's guidance on the delivery channel names as
counterfeit-prone, with the three at the end (agricultural inputs, decoration materials,
explosive-precursor chemicals) covered only as far as ImageNet classes allow, as said above.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

GOODS_CATEGORIES: tuple[str, ...] = (
    "footwear_clothing",
    "bags_leather",
    "watches_jewellery",
    "electronics",
    "cosmetics",
    "medicines_medical",
    "food",
    "children_toys",
    "auto_parts",
    "printed_matter",
    "agricultural_inputs",
    "decoration_materials",
    "explosive_precursors",
    "other",
)

# sha256 of the ImageNet-1k labels, one per line in class-index order, each line ending in "\n".
IMAGENET_LABELS_SHA256 = "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2"
IMAGENET_CLASSES = 1000

# fmt: off
CATEGORY_TABLE: dict[str, tuple[int, ...]] = {
    "footwear_clothing": (
        399, 400, 411, 433, 439, 445, 451, 452, 457, 459, 474, 501, 502, 514, 515, 552, 568, 578, 591,
        601, 608, 610, 614, 617, 630, 638, 639, 652, 655, 658, 667, 689, 697, 735, 770, 774, 775, 796,
        806, 808, 824, 834, 841, 842, 869, 885, 887, 906, 615, 788,
    ),
    "bags_leather": (414, 464, 597, 636, 748, 893),
    "watches_jewellery": (409, 530, 531, 584, 635, 679, 826, 836, 837, 892),
    "electronics": (
        481, 482, 485, 487, 508, 527, 528, 545, 589, 590, 592, 598, 605, 606, 613, 620, 632, 650, 651,
        662, 664, 673, 688, 707, 713, 732, 740, 742, 745, 754, 759, 761, 782, 810, 844, 848, 851, 859,
        878, 882,
    ),
    "cosmetics": (551, 585, 629, 631, 711, 804, 838, 903),
    "medicines_medical": (419, 523, 570, 648, 678, 691, 712, 720, 823, 830, 840, 845),
    "food": (
        415, 440, 441, 467, 509, 582, 737, 898, 901, 907,
        *range(924, 958), *range(959, 970), 987,
    ),
    "children_toys": (
        417, 429, 430, 431, 443, 516, 520, 522, 529, 574, 611, 680, 719, 722, 723, 768, 805, 850, 852,
        865, 870, 890,
    ),
    "auto_parts": (475, 479, 535, 581, 685, 686, 785),
    "printed_matter": (446, 454, 549, 624, 681, 916, 917, 918, 921, 922),
    "agricultural_inputs": (595, 730, 856, 958),
    "decoration_materials": (
        435, 489, 539, 587, 619, 696, 716, 726, 784, 794, 799, 858, 861, 896, 904, 905, 912,
    ),
    "explosive_precursors": (),
}
# fmt: on


def labels_sha256(labels: Sequence[str]) -> str:
    """Digest of a label list in the form `IMAGENET_LABELS_SHA256` pins."""
    return hashlib.sha256("".join(f"{label}\n" for label in labels).encode("utf-8")).hexdigest()


def category_index() -> npt.NDArray[np.int64]:
    """For each ImageNet class, the index of its goods category in `GOODS_CATEGORIES`."""
    other = GOODS_CATEGORIES.index("other")
    index = np.full(IMAGENET_CLASSES, other, dtype=np.int64)
    for name, classes in CATEGORY_TABLE.items():
        cat = GOODS_CATEGORIES.index(name)
        for cls in classes:
            if index[cls] != other:
                raise ValueError(f"ImageNet class {cls} is listed under two categories")
            index[cls] = cat
    return index


def category_matrix() -> npt.NDArray[np.float32]:
    """A (1000, categories) 0/1 matrix: class probabilities @ matrix = category probabilities."""
    matrix = np.zeros((IMAGENET_CLASSES, len(GOODS_CATEGORIES)), dtype=np.float32)
    matrix[np.arange(IMAGENET_CLASSES), category_index()] = 1.0
    return matrix


def category_probs(class_probs: npt.NDArray[np.float32]) -> dict[str, float]:
    """Category -> probability for one softmax vector over the ImageNet classes."""
    sums = class_probs @ category_matrix()
    return {name: float(p) for name, p in zip(GOODS_CATEGORIES, sums, strict=True)}
