"""Write src/tweetdesk/data/sample_tweets.jsonl and sample_bad.jsonl: the demo's own tweets.

Every text here is written for this project (the airline data set is CC BY-NC-SA and is not copied): core
sentences per topic and sentiment, filled with realistic entities (airports, cities, flight numbers, dates,
times, money, record locators, bag file references, seats), then varied with optional tails, hashtags, emoji and
casing so that the tweets do not read as one template. A handful of hand-written conversation threads include
customers replying to themselves and two replies from our own handle ("tweetdesk"). ``extras`` adds what X's
rules of 2026 turn on: tweets that only use a brand's name (listening only: no automatic reply), quotes of our
tweets, an e-mail address that looks like a mention, and a customer who writes "STOP".

Each line is a ``records.Tweet`` plus two fields the record ignores, ``expected_topic`` and
``expected_sentiment``: the label the writer meant, for eyeballing the classifiers on the demo.

    .venv/bin/python scripts/make_sample.py          # deterministic (fixed seed)
"""

from __future__ import annotations

import json
import random
import string
from datetime import datetime, timedelta, timezone

from tweetdesk.config import SAMPLE_OUR_HANDLES, SAMPLE_TWEETS
from tweetdesk.ingest.snowflake import snowflake, snowflake_at
from tweetdesk.tickets.ids import ticket_id_for

SEED = 20250303
OUR_HANDLE, OUR_USER_ID = "tweetdesk", "1501234567890123456"
# Any key: ticket IDs in the sample only illustrate our replies' wording (a deployment keys its own).
SAMPLE_KEY = b"tweetdesk sample"
START = datetime(2025, 3, 3, 6, 0, tzinfo=timezone.utc)
SPAN_HOURS = 5 * 24 - 6

# handle, IATA code, hubs, weight (how often customers write to them)
AIRLINES = [
    ("united", "UA", ["EWR", "ORD", "DEN", "IAH", "SFO", "IAD"], 5),
    ("AmericanAir", "AA", ["DFW", "CLT", "MIA", "PHX", "ORD", "PHL"], 5),
    ("Delta", "DL", ["ATL", "DTW", "MSP", "SLC", "JFK", "SEA"], 4),
    ("SouthwestAir", "WN", ["MDW", "BWI", "DAL", "LAS", "DEN", "BNA"], 4),
    ("JetBlue", "B6", ["JFK", "BOS", "FLL", "MCO"], 2),
    ("AlaskaAir", "AS", ["SEA", "PDX", "SFO", "ANC"], 2),
    ("SpiritAirlines", "NK", ["FLL", "LAS", "DTW", "MCO"], 1),
    ("FlyFrontier", "F9", ["DEN", "LAS", "MCO", "PHL"], 1),
]
CITIES = {
    "EWR": "Newark", "ORD": "Chicago", "DEN": "Denver", "IAH": "Houston", "SFO": "San Francisco",
    "IAD": "DC", "DFW": "Dallas", "CLT": "Charlotte", "MIA": "Miami", "PHX": "Phoenix", "PHL": "Philly",
    "ATL": "Atlanta", "DTW": "Detroit", "MSP": "Minneapolis", "SLC": "Salt Lake", "JFK": "New York",
    "SEA": "Seattle", "MDW": "Chicago", "BWI": "Baltimore", "DAL": "Dallas", "LAS": "Vegas", "BNA": "Nashville",
    "BOS": "Boston", "FLL": "Fort Lauderdale", "MCO": "Orlando", "PDX": "Portland", "ANC": "Anchorage",
    "LAX": "LA", "SAN": "San Diego", "AUS": "Austin", "RDU": "Raleigh", "TPA": "Tampa", "HNL": "Honolulu",
    "CUN": "Cancun", "LHR": "London", "YVR": "Vancouver",
}
DESTS = list(CITIES)
INTERNATIONAL = {"UA", "AA", "DL", "AS"}  # the airlines here that fly to London/Vancouver/Honolulu
DATES = ["March 3", "Mar 9", "3/14", "Friday", "tomorrow", "next Tuesday", "the 21st", "April 2", "Sunday",
         "March 28", "4/11", "Monday morning", "Thursday night", "this weekend", "Mar 17th"]
NAMES = ["Maria", "Kevin", "Denise", "Tom", "Aisha", "Luis", "Brenda", "Jamal", "Priya", "Greg", "Rosa", "Daniel"]
AIRCRAFT = ["737 MAX 8", "A321neo", "787-9", "E175", "A220", "757"]
FIRST = ["jess", "mike", "kdub", "sarah", "tony", "lauren", "dre", "megan", "chris", "nina", "sam", "becca",
         "jordan", "alex", "taylor", "marcus", "kelly", "ryan", "tasha", "ben", "olivia", "nate", "carla", "will",
         "emily", "josh", "ana", "derek", "hannah", "raj", "maya", "pete", "gina", "omar", "lisa", "zach"]
LAST = ["travels", "onthego", "_b", "smith", "88", "_atl", "inthecity", "mcfly", "writes", "_nyc", "runs",
        "j", "_official", "2015", "dad", "mom", "_pdx", "_tx", "k", "_22", "lee", "garcia", "flies", "says"]

# --- core sentences: (topic, sentiment) -> texts. "{@}" is the airline handle. ----------------------------------
T: dict[tuple[str, str], list[str]] = {
    ("Baggage Issue", "negative"): [
        "{@} bag came out soaking wet, everything inside ruined. {fl}, {org} to {dst}",
        "{@} 2 hours in the lost baggage line in {dstc} just to be told to fill out the form online",
        "{@} my bag has seen more cities this week than I have. currently in {cityx} apparently",
        "{@} how does a nonstop flight lose a bag. there was no connection. it was right there",
        "{@} my bag didn't make it to {dstc}. landed on {fl} over {hrs} hours ago and the baggage office says 'maybe tomorrow'",
        "{@} day {n} without my suitcase. file {bagref}. nobody picks up at the baggage desk",
        "{@} checked 2 bags at {org}, only 1 showed up in {dst}. tracker still says 'loaded'. loaded where??",
        "Waited {mins} minutes at the carousel in {dstc} for bags off {fl}. {mins} minutes. {@}",
        "{@} you snapped the wheel off my suitcase on {fl} and the claim form wants me to mail it in?? it's 2025",
        "{@} our car seat came off the plane cracked. traveling with a 2 year old. what are we supposed to do now",
        "{@} gate checked my carry on because the bins were 'full' and now it's lost. my meds were in it",
        "{@} still no update on my delayed bag, ref {bagref}. it's been {n} days and I need my work clothes",
        "{@} paid {bagfee} to check a bag that then flew to {cityx} instead of {dstc}. refund the fee at least",
        "hey {@} the bag tracking page has said 'in transit' for 36 hours. in transit to where exactly",
        "{@} bag finally showed up at {dst} baggage service, zipper open, stuff missing. where do I file",
        "{@} the agent at the baggage counter in {dstc} literally shrugged at me. my bag is lost and that's the answer?",
        "{@} courier delivered my suitcase to the wrong address and won't go back for it. ref {bagref}",
        "{@} my golf clubs came out in {dstc} bent in half. {fl} from {org}. how does this even happen",
        "so {@} lost my luggage on the way to my sister's wedding. the dress was in it. please call me",
        "{@} third trip in a row my bag misses the connection in {org}. 50 minute layover is not my fault",
    ],
    ("Baggage Issue", "neutral"): [
        "{@} what's the size limit for a checked bag on international? flying {org} to {dstc} {date}",
        "{@} can I bring a stroller to the gate on {fl} or does it have to be checked at the counter?",
        "{@} do I need to recheck my bag in {dstc} if the second flight is on a separate ticket?",
        "{@} how do I add a bag to my trip after I've already checked in? conf {pnr}",
        "{@} bag tag says {dst} but my final stop is {cityx}... is that normal for a connection?",
        "{@} filed a delayed bag report at {dst}, ref {bagref}. how long does delivery usually take?",
        "{@} are skis counted as a regular checked bag or oversized?",
    ],
    ("Baggage Issue", "positive"): [
        "shoutout to the {@} baggage team at {dst}, found my bag and had it at my hotel by 10pm. thank you!",
        "{@} bag came off the belt first for once 😂 {fl} was smooth all around",
        "{@} thanks for tracking down my lost bag, {name} at the {dst} baggage office was amazing",
        "{@} honestly impressed, the app showed my bag at every step from {org} to {dst}",
        "{@} my suitcase beat me to the house 😅 thanks for the courier delivery, file {bagref} closed",
    ],
    ("Customer Experience", "negative"): [
        "{@} got treated like a criminal at the {org} counter for asking to speak to a supervisor",
        "{@} zero announcements, zero service, zero apologies on {fl}. just vibes",
        "{@} the seat pocket on {fl} had someone's old gum in it. did the cleaning crew take the day off",
        "{@} flight attendant on {fl} was so rude to an older lady who needed help with her bag. not ok",
        "{@} no wifi, dead screens, no snacks on a {hrs} hour flight. what exactly am I paying for",
        "{@} the only lavatory in the back was out of order the whole way from {org} to {dst}. {hrs} hours.",
        "{@} the lounge at {org} was so packed people were sitting on the floor. not worth the membership",
        "{@} crew on {fl} spent the whole night laughing loudly in the galley while everyone tried to sleep",
        "{@} ran out of meal options by row 12. paid for premium and got a bag of pretzels",
        "{@} cabin was freezing on {fl} and the FA told me blankets are 'for first class only'",
        "{@} gate agent in {org} yelled at my dad for asking a simple question. we'd like an apology",
        "{@} boarding at {org} was total chaos, no groups called, just a crowd pushing forward",
        "{@} wheelchair assistance never showed up in {dst}. my mom sat alone at the gate for {mins} minutes",
        "{@} seatback entertainment dead on a cross country flight again. third time this year",
        "{@} why does every interaction with your staff feel like I'm bothering them",
        "{@} the plane on {fl} was filthy. crumbs everywhere, sticky tray table, used napkins in the seat pocket",
    ],
    ("Customer Experience", "neutral"): [
        "{@} is the wifi free on {fl} or do I need to buy a pass?",
        "{@} does the {org} lounge open before the 6am departures?",
        "{@} is there a meal on {org} to {dst} or should I eat at the airport first?",
        "{@} how do I request wheelchair assistance for my grandmother flying {date}?",
        "{@} can I bring my own food through security for {fl}? it's a {hrs} hr flight",
        "{@} is there power at every seat on the {aircraft}?",
    ],
    ("Customer Experience", "positive"): [
        "{@} the crew on {fl} tonight were fantastic, {name} made my kid's first flight so special ❤️",
        "Huge thanks to {@} for the birthday announcement on {fl}! the whole cabin sang lol",
        "{@} great flight {org} to {dst}, friendly crew, landed early. more of this please",
        "{@} gate agent {name} at {org} went above and beyond to get our group on together. thank you!!",
        "smoothest flight I've had in months, thanks {@} ✈️",
        "{@} the new cabins are really nice, the seats actually recline and the screens work",
        "{@} captain on {fl} kept us posted the whole time through the bumps, really appreciated it",
        "{@} free snacks, chill crew, {org} to {dst} in record time. no complaints",
        "{@} flight attendant noticed I was a nervous flyer and checked on me twice. so kind",
    ],
    ("Delay and Customer Service", "negative"): [
        "{@} {fl} boarded, sat for an hour, then cancelled. we're all back at the gate with no info",
        "{@} 5 hours in the {org} terminal and counting. your agents have stopped even pretending to know",
        "{@} every single flight I've taken with you this month has been late. every one",
        "{@} pilot says we're waiting on paperwork. it's been {mins} minutes. paperwork.",
        "{@} the app sent me a delay notice at 3am and another at 4am. just pick a time",
        "{@} 'the crew is on their way' has been the answer for {hrs} hours at gate {gate}",
        "{@} {fl} delayed {hrs} hours now and the app still says on time. what is going on",
        "{@} we've been sitting on the tarmac at {org} for {mins} minutes with no update. no water either",
        "{@} on hold for {hrs} hours to ask one question about my delayed flight. {hrs} hours!",
        "{@} {fl} from {org} delayed again. first it was weather, now crew. going to miss my connection in {dst}",
        "{@} missed my connection because of your delay and the only rebooking is {date}. I have work",
        "{@} the customer service line hung up on me after 45 minutes. twice.",
        "{@} delay after delay on {fl}. 6pm became 8:40 became 11:15. just cancel it and be honest",
        "{@} nobody at gate {gate} can tell us anything about {fl}. {n} agents, zero answers",
        "{@} 3 hour delay in {org} and all you offer is a $12 food voucher. the airport sandwich is $16",
        "{@} your chat bot keeps sending me in circles. I need a human. flight delayed, connection gone",
        "{@} mechanical on {fl}. deplaned, reboarded, deplaned again. we've been here since {time}",
        "{@} stuck in {dstc} overnight because of your delay and no hotel voucher. 'not our fault' apparently",
        "{@} DM'd you 2 days ago about my delayed flight and still no response",
        "{@} flight delayed {hrs} hours, gate changed 3 times, and the agent just said 'check the app'",
        "{@} why does the app say delayed 20 min when the plane isn't even here yet. just tell us",
        "{@} called customer service 4 times today about {fl}. 4 different answers.",
        "{@} been at {org} since {time}. {fl} now leaves at {time2}. could have driven to {dstc} by now",
        "{@} the rebooking line at {org} is 200 people long and there are 2 agents working it",
        "{@} {fl} was supposed to leave at {time}. it's now {time2} and we haven't boarded. no announcements",
    ],
    ("Delay and Customer Service", "neutral"): [
        "{@} any update on {fl} out of {org}? board still says delayed",
        "{@} will {fl} wait for people coming off the late flight from {org}?",
        "{@} is there a way to get a text when {fl} gets a new departure time?",
        "{@} what's the status of {fl} to {dstc}? the app won't load for me",
        "{@} if my flight is delayed over 3 hours is the meal voucher automatic or do I ask?",
        "{@} heard there's a ground stop at {org}, does that affect {fl} at {time}?",
    ],
    ("Delay and Customer Service", "positive"): [
        "{@} delayed {mins} minutes but the gate agent kept everyone updated and handed out snacks. appreciated",
        "{@} thanks for holding {fl} for those of us sprinting from the {org} gate, made it with 2 min to spare 🙏",
        "{@} phone agent {name} rebooked me in 5 minutes after my delay. actual hero",
        "{@} quick answer on DM, got me on an earlier flight after the delay. thank you",
        "props to {@} for the honest delay updates tonight instead of 15 minutes at a time",
    ],
    ("Extra Charges", "negative"): [
        "{@} why is there a 'carrier imposed fee' of {usd} on an award ticket",
        "{@} charged for a checked bag that I carried on. I have the receipt and the bag. {pnr}",
        "{@} charged me {usd} for a carry on at the gate even though it fit in the sizer. ridiculous",
        "{@} why was I charged {usd} twice for the same checked bag? conf {pnr}",
        "{@} {usd} to pick a seat next to my 6 year old. you should be ashamed",
        "{@} paid for wifi on {fl}, it never once connected. I want my {usd} back",
        "{@} got hit with a {usd} change fee I was told didn't exist anymore",
        "{@} the 'low fare' was $89 and by checkout it was $240 with fees. that's not a low fare",
        "{@} overweight fee for a bag that was 50.5 lbs. half a pound. {usd}.",
        "{@} there's a {usd} charge on my card from you I don't recognize. booking {pnr}. please explain",
        "{@} paid for priority boarding and then they boarded everyone at once. refund the {usd}",
        "{@} {usd} for a sandwich and a water on {fl}. come on",
    ],
    ("Extra Charges", "neutral"): [
        "{@} how much is a second checked bag on domestic flights now?",
        "{@} is the seat selection fee refunded if my flight gets cancelled?",
        "{@} saw a {usd} charge pending after booking {pnr}, is that a hold or the actual fee?",
        "{@} does the bag fee apply each way or once for the round trip?",
    ],
    ("Extra Charges", "positive"): [
        "{@} thanks for refunding the double bag charge so fast, saw it back on my card today",
        "{@} appreciate you waiving the change fee after my family emergency. means a lot",
        "{@} the free checked bag with the card paid for itself on this trip 👍",
    ],
    ("Online Booking", "negative"): [
        "{@} booking page keeps resetting my dates to today. tried Chrome, Safari and the app",
        "{@} why does the app say 'no flights found' for {org} to {dst} when the website shows 6",
        "{@} website crashed at payment and now I have a charge but no confirmation email",
        "{@} your app keeps logging me out in the middle of booking. tried 4 times",
        "{@} the site shows a fare of {usd} then errors out at checkout and comes back higher",
        "{@} can't add my known traveler number online, it just says 'an error occurred'",
        "{@} booked online, got confirmation {pnr}, but the trip doesn't show up in my account",
        "{@} online check-in not working for {fl}, tells everyone to 'see an agent'",
        "{@} your app won't let me pay with miles + cash even though the site says I can",
        "{@} tried to book {org} to {dst} on the website for an hour. every search times out",
        "{@} my mobile boarding pass disappeared from the app right at the gate. great timing",
        "{@} why does the website make me call to add a lap infant?? phone wait is 2 hours",
        "{@} the promo code from your email doesn't work on the site. 'invalid code' every time",
    ],
    ("Online Booking", "neutral"): [
        "{@} is there a way to book a multi-city trip online or do I need to call?",
        "{@} can I hold a fare online for 24 hours before paying?",
        "{@} how do I add my frequent flyer number to a booking made on a travel site? conf {pnr}",
        "{@} is the website down for maintenance? trying to check in for {fl}",
        "{@} does the app let me add a pet to the reservation?",
        "{@} will online check-in work if my first leg is on a partner airline?",
    ],
    ("Online Booking", "positive"): [
        "{@} new app is so much better, booked {org} to {dst} in like two minutes",
        "{@} love that I can change seats and add bags in the app now without calling",
        "{@} online check-in + mobile pass worked perfectly today, through security in 10 min",
    ],
    ("Reschedule and Refund", "negative"): [
        "{@} cancelled my trip within 24 hours like your site says I can and now it's 'non-refundable'",
        "{@} the refund form on your site errors out at the last step every single time",
        "{@} you owe me {usd} for a flight that never took off. a credit is not my money back",
        "{@} rebooked me onto a flight that lands after the event I was flying for. what's the point, refund me",
        "{@} asked to move {pnr} to {date}, the agent charged me and the change never went through",
        "{@} {fl} was cancelled on {date} and I STILL haven't gotten my refund. it's been {n} weeks",
        "{@} you cancelled my flight and offered a credit instead of a refund. I want my money back",
        "{@} tried to move my flight to {date} and the site wants {usd} more for the same route",
        "{@} refund request for {pnr} has said 'processing' for 6 weeks. how long does this take",
        "{@} cancelled {fl} and rebooked me 2 days later without asking. that doesn't work for me",
        "{@} told by 3 different agents my refund was approved, still nothing on my card",
        "{@} why can't I get a credit for a basic economy ticket when YOU changed the schedule",
        "{@} schedule change moved my {time} flight to {time2} and now I miss my cruise. need a refund",
        "{@} travel credit expired before I could use it because of your cancellations. please extend it",
        "{@} you rebooked me through {cityx} with a 9 hour layover. I need a different routing or a refund",
        "{@} my refund came back as a voucher. I asked for the original form of payment. conf {pnr}",
        "{@} cancelled flight, refund denied because of 'weather'. the weather was fine, it was crew",
        "{@} trying to rebook after the cancellation and the only option is {date}. are there no other flights",
    ],
    ("Reschedule and Refund", "neutral"): [
        "{@} my flight on {date} got a schedule change notice, how do I pick a different one?",
        "{@} if I change {pnr} to a cheaper flight do I get the difference back as credit?",
        "{@} how long do refunds usually take to show up on a credit card?",
        "{@} can I move my return from {date} to {date2} without a change fee?",
        "{@} does the refund for a cancelled flight include the seat fee I paid?",
    ],
    ("Reschedule and Refund", "positive"): [
        "{@} refund for my cancelled flight hit my account in 4 days. honestly faster than I expected",
        "{@} thanks for rebooking me on an earlier flight automatically after the cancellation, super smooth",
        "{@} same day change was free and took 30 seconds in the app, thank you",
        "{@} agent {name} got my refund sorted on the first call. rare. thank you",
    ],
    ("Reservation Issue", "negative"): [
        "{@} bought 2 tickets, only 1 shows up on {pnr}. my son can't check in",
        "{@} your agent cancelled the wrong reservation. mine, not the one I asked about",
        "{@} my reservation {pnr} just disappeared from the app. I fly {date}",
        "{@} my name is misspelled on the ticket and the agent says I need a new one?? it's one letter",
        "{@} your system split my family's reservation and now my kids are on a different flight",
        "{@} I have confirmation {pnr} but the agent at {org} says there's no ticket attached",
        "{@} booked a round trip, the outbound got cancelled and you cancelled my return too. why",
        "{@} my husband's reservation shows the wrong date of birth and we can't fix it online",
        "{@} got to the {org} counter and was told my reservation was 'not ticketed'. paid {usd} a month ago",
        "{@} you put my reservation on hold for payment verification the night before the flight",
        "{@} our seat assignments vanished from {pnr} after the schedule change",
    ],
    ("Reservation Issue", "neutral"): [
        "{@} how do I link two reservations so we sit together? {pnr} and my wife's",
        "{@} can I add a lap infant to an existing reservation?",
        "{@} my reservation says 'ticketing in progress', is that normal?",
        "{@} need to correct a middle name on booking {pnr}, should I DM you?",
        "{@} can I change the name on a reservation if my coworker is going instead?",
    ],
    ("Reservation Issue", "positive"): [
        "{@} thank you {name} for fixing the name mismatch on my reservation in 2 minutes",
        "{@} agent at {org} found my missing reservation and got me ticketed before boarding. lifesaver",
        "{@} appreciate the quick DM help merging our reservations 🙏",
    ],
    ("Seating Preferences", "negative"): [
        "{@} paid {usd} for extra legroom on {fl}, seat was broken, so they moved me to a regular one. refund?",
        "{@} seat {seat} is right next to the lavatory and smells like it. {hrs} hours",
        "{@} paid for an aisle seat and got moved to a middle at the gate with no explanation",
        "{@} my 4 year old is seated 15 rows away from me on {fl}. please fix this",
        "{@} seat {seat} doesn't recline and the tray table is broken. {hrs} hours like this",
        "{@} why does the app show the whole plane as 'preferred' seats for {usd} extra",
        "{@} got moved from extra legroom to the last row on {fl} and nobody can tell me why",
        "{@} bought an exit row for the legroom and this exit row has no extra legroom. great",
        "{@} we booked seats together months ago and the equipment change scattered us all over the plane",
        "{@} the 'window' seat {seat} has no window. just a wall",
        "{@} upgrade list had me #1 and the seat went to someone who walked up 5 min before boarding",
    ],
    ("Seating Preferences", "neutral"): [
        "{@} how early can I pick seats for a flight on {date}?",
        "{@} which rows on the {aircraft} have extra legroom?",
        "{@} is {seat} a decent seat on {fl}? the seat map looks weird",
        "{@} do you still seat families with small kids together for free?",
        "{@} can I request a bulkhead seat for a medical reason?",
    ],
    ("Seating Preferences", "positive"): [
        "{@} thanks for the surprise upgrade on {fl}! 🙌",
        "{@} gate agent moved us so my husband and I could sit together. small thing, big difference",
        "{@} exit row on {fl} was worth every penny. could actually stretch my legs",
        "{@} seat {seat} on the new planes has real legroom, I'm 6'4 and comfortable for once",
    ],
}
# A few tweets in Spanish (lang "es"): the desk sees them and must not crash on them.
SPANISH = [
    ("Baggage Issue", "negative", "{@} mi maleta no llegó a {dstc} en el vuelo {fl}. nadie nos da información"),
    ("Customer Experience", "positive", "{@} gracias por el excelente servicio de {org} a {dst}, la tripulación muy amable"),
]
# How many tweets per (topic, sentiment): mostly complaints, as on a real support desk.
COUNTS = {
    "Baggage Issue": (40, 8, 7),
    "Customer Experience": (30, 8, 14),
    "Delay and Customer Service": (55, 8, 8),
    "Extra Charges": (22, 6, 3),
    "Online Booking": (22, 10, 5),
    "Reschedule and Refund": (38, 10, 6),
    "Reservation Issue": (22, 9, 4),
    "Seating Preferences": (20, 9, 7),
}
TAILS = {
    "negative": ["Unacceptable.", "Not happy.", "Do better.", "Please help.", "This is ridiculous.",
                 "So frustrated right now.", "Never again.", "Still waiting.", "Thanks for nothing.",
                 "Who do I even talk to about this?", "Third time this year.", "Please DM me.",
                 "Just want an answer.", "I've been a loyal customer for 10 years.", "smh"],
    "neutral": ["Thanks!", "Thanks in advance.", "Appreciate it.", "thx", "Can't find it on the site."],
    "positive": ["Thank you!", "Will fly again.", "Great job.", "Made my day.", "👏"],
}
HASHTAGS = {
    "negative": ["#fail", "#customerservice", "#neveragain", "#frustrated", "#travelnightmare",
                 "#stuckattheairport", "#badservice"],
    "neutral": ["#travel", "#help", "#question"],
    "positive": ["#happytraveler", "#greatservice", "#travel", "#thankyou"],
}
EMOJI = {"negative": ["😡", "😤", "🙄", "😩", "😭"], "neutral": ["🤔"], "positive": ["😊", "🙌", "❤️", "✈️"]}


class Filler:
    """Fills one core sentence's slots consistently (one airline, one route, one flight)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def airline(self):
        return self.rng.choices(AIRLINES, weights=[a[3] for a in AIRLINES])[0]

    def slots(self, airline) -> dict[str, str]:
        r = self.rng
        handle, code, hubs, _ = airline
        org = r.choice(hubs)
        dests = DESTS if code in INTERNATIONAL else [d for d in DESTS if d not in ("LHR", "YVR", "HNL", "ANC")]
        dst = r.choice([d for d in dests if d != org and CITIES[d] != CITIES[org]])
        cityx = r.choice([c for c in sorted(set(CITIES.values())) if c not in (CITIES[org], CITIES[dst], "London", "Vancouver", "Honolulu", "Cancun")])
        num = r.choice([r.randint(100, 999), r.randint(1000, 2999)])
        fl = r.choices([f"{code} {num}", f"{code}{num}", f"flight {num}"], weights=[5, 3, 2])[0]
        hrs = r.randint(2, 7)
        t1, t2 = self.times()
        return {
            "@": "@" + handle, "fl": fl, "org": org, "dst": dst, "orgc": CITIES[org], "dstc": CITIES[dst],
            "cityx": cityx, "date": r.choice(DATES), "date2": r.choice(DATES),
            "time": t1, "time2": t2, "hrs": str(hrs), "mins": str(r.choice([35, 45, 50, 55, 70, 90])),
            "n": str(r.randint(2, 5)), "usd": self.money(), "bagfee": r.choice(["$35", "$40", "$45", "$30"]),
            "pnr": self.pnr(), "bagref": f"{dst}{code}{r.randint(10000, 99999)}", "seat": self.seat(),
            "gate": f"{r.choice('ABCDE')}{r.randint(1, 48)}", "name": r.choice(NAMES), "aircraft": r.choice(AIRCRAFT),
        }

    def times(self) -> tuple[str, str]:
        """Two clock times, the second later, in one person's writing style."""
        r = self.rng
        style = r.choice(["am", "AM", "24h"])
        h1 = r.randint(5, 20)
        h2 = min(h1 + r.randint(2, 4), 23)
        return tuple(self._fmt(h, r.choice([0, 5, 10, 15, 20, 25, 30, 40, 45, 50, 55]), style) for h in (h1, h2))

    @staticmethod
    def _fmt(h: int, m: int, style: str) -> str:
        if style == "24h":
            return f"{h}:{m:02d}"
        half = ("am" if h < 12 else "pm") if style == "am" else (" AM" if h < 12 else " PM")
        return f"{(h - 1) % 12 + 1}:{m:02d}{half}"

    def money(self) -> str:
        r = self.rng
        return r.choice(["$35", "$75", "$99", "$150", "$200", "$65", f"${r.randint(20, 400)}",
                         f"${r.randint(20, 400)}.{r.randint(0, 99):02d}", "$12.99", "$25"])

    def pnr(self) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        while True:
            code = "".join(self.rng.choice(alphabet) for _ in range(6))
            if sum(c.isalpha() for c in code) >= 3:
                return code

    def seat(self) -> str:
        return f"{self.rng.randint(3, 38)}{self.rng.choice('ABCDEF')}"


def decorate(rng: random.Random, text: str, sentiment: str) -> str:
    """Make one filled sentence read less like a template: emphasis, a second sentence, a hashtag, an emoji."""
    ends_in_word = text[-1:].isalnum() or text[-1:] in "')\""
    if sentiment == "negative" and ends_in_word and rng.random() < 0.08:
        text, ends_in_word = text + "!!", False
    tail = rng.choice(TAILS[sentiment])
    if rng.random() < 0.4 and text[-1:] not in "😂😅❤️✈️🙌🙏👍" and tail.split()[0].lower() not in text.lower():
        if tail[:1].isalpha() and tail[:1].islower():  # "smh", "thx" run on after a comma
            text += (", " if ends_in_word else " ") + tail
        else:
            text += (". " if ends_in_word else " ") + tail
    if rng.random() < 0.12:
        text += " " + rng.choice(HASHTAGS[sentiment])
    if rng.random() < (0.02 if sentiment == "negative" else 0.04) and not any(e in text for e in "😂😅❤️✈️🙌🙏👍👏"):
        text += " " + rng.choice(EMOJI[sentiment])
    if text.startswith("@") and rng.random() < 0.25:
        # people start the sentence after the handle in either case
        head, _, rest = text.partition(" ")
        if rest[:1].islower():
            rest = rest[0].upper() + rest[1:]
        elif rest[:1].isupper() and rest[1:2].islower():
            rest = rest[0].lower() + rest[1:]
        text = f"{head} {rest}"
    if rng.random() < 0.03:
        text += " https://t.co/" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
    return text


def author(rng: random.Random, used: set[str]) -> str:
    while True:
        h = rng.choice(FIRST) + rng.choice(LAST)
        if rng.random() < 0.3:
            h += str(rng.randint(1, 99))
        h = h[:15]  # X user names are at most 15 characters
        if h not in used:
            used.add(h)
            return h


def user_id(rng: random.Random) -> str:
    # Older accounts have short ids, newer ones 19-digit snowflakes.
    return str(rng.choice([rng.randint(10**7, 10**9), rng.randint(10**9, 4 * 10**9), rng.randint(7 * 10**17, 18 * 10**17)]))


def threads(rng: random.Random, fill: Filler) -> list[list[dict]]:
    """Hand-written conversations. Each item: author 'c' (the customer) or 'us'; text; topic; sentiment;
    'after' = minutes after the previous message; 'to' = index of the message replied to (default: previous)."""
    return [
        [dict(a="c", t="{@} {fl} out of {org} delayed again, now showing {time}. any chance I still make my connection in {dst}?",
              topic="Delay and Customer Service", s="neutral"),
         dict(a="c", t="update: now it's cancelled. rebooking line is about 80 people deep", after=42,
              topic="Reschedule and Refund", s="negative"),
         dict(a="c", t="finally rebooked for tomorrow 7am. no hotel voucher offered, was told to 'try the airport chairs'",
              after=71, topic="Delay and Customer Service", s="negative")],
        [dict(a="c", t="{@} my bag didn't show up in {dstc} after {fl}. file {bagref}. it has my daughter's inhaler in it",
              topic="Baggage Issue", s="negative"),
         dict(a="us", t="@{c} We're sorry your bag didn't arrive. Your case is ticket {ticket}; our baggage team is "
                        "tracing file {bagref} and will update you here.", after=18, topic="Baggage Issue", s="neutral"),
         dict(a="c", t="@tweetdesk thanks. any news? the inhaler is the urgent part", after=240,
              topic="Baggage Issue", s="negative")],
        [dict(a="c", t="{@} still waiting on the refund for {pnr}. flight was cancelled {date}",
              topic="Reschedule and Refund", s="negative"),
         dict(a="c", t="day 45. still nothing. I've filled the refund form twice", after=60 * 26,
              topic="Reschedule and Refund", s="negative")],
        [dict(a="c", t="{@} you split me and my 5 year old up on {fl}. she's in {seat}, I'm 20 rows back",
              topic="Seating Preferences", s="negative"),
         dict(a="c", t="update: the gate agent sorted it out and we're sitting together. thank you {@} 🙏", after=35,
              topic="Seating Preferences", s="positive")],
        [dict(a="c", t="{@} app crashed right at payment for {org} to {dst}. do I have a booking or not??",
              topic="Online Booking", s="negative"),
         dict(a="c", t="and now there are two charges of {usd} on my card. great", after=25,
              topic="Extra Charges", s="negative")],
        [dict(a="c", t="{@} my reservation {pnr} shows my maiden name and my passport doesn't. I fly {date}",
              topic="Reservation Issue", s="negative"),
         dict(a="us", t="@{c} Thanks for flagging this. Ticket {ticket} is open for your name correction; an agent "
                        "will DM you to confirm the passport details.", after=12, topic="Reservation Issue", s="neutral")],
        [dict(a="c", t="shoutout to the crew on {fl} from {org}, best flight I've had all year",
              topic="Customer Experience", s="positive"),
         dict(a="c", t="forgot to add: {name} at the gate in {org} was great too", after=9,
              topic="Customer Experience", s="positive")],
        [dict(a="c", t="{@} is {fl} still on schedule for {time}? weather looks rough in {orgc}",
              topic="Delay and Customer Service", s="neutral"),
         dict(a="c", t="never mind, delayed 2 more hours. would've been nice to get a text", after=50,
              topic="Delay and Customer Service", s="negative"),
         dict(a="c", t="boarding now, only 2.5 hrs late. crew was nice about it at least", after=150,
              topic="Delay and Customer Service", s="neutral")],
    ]


def build(seed: int = SEED) -> list[dict]:
    """Every tweet of the sample, in time order: the core set and the extras for X's rules."""
    rows = core(seed)
    return sorted(rows + extras(rows), key=lambda r: r["created_at"])  # stable: the core tweets keep their order


def core(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    fill = Filler(rng)
    used_handles: set[str] = {OUR_HANDLE}
    seen: set[str] = set()
    items: list[dict] = []  # records before ids: key, when, fields, refs

    def new_text(core: str, airline, sentiment: str, decorate_it: bool = True) -> tuple[str, dict]:
        for _ in range(50):
            slots = fill.slots(airline)
            text = core.format(**slots)
            if decorate_it:
                text = decorate(rng, text, sentiment)
            if text not in seen and len(text) <= 280:
                seen.add(text)
                return text, slots
        raise RuntimeError(f"cannot make a unique tweet from {core!r}")

    def customer():
        return author(rng, used_handles), user_id(rng)

    # Single tweets: every core sentence is used before any repeats, per (topic, sentiment).
    for topic, counts in COUNTS.items():
        for sentiment, n in zip(("negative", "neutral", "positive"), counts):
            cores = T[(topic, sentiment)]
            order: list[str] = []
            while len(order) < n:
                batch = cores[:]
                rng.shuffle(batch)
                order += batch
            for core in order[:n]:
                airline = fill.airline()
                text, _ = new_text(core, airline, sentiment)
                handle, uid = customer()
                items.append(dict(key=len(items), author=handle, author_id=uid, text=text, lang="en",
                                  brand=airline[0].lower(), topic=topic, sentiment=sentiment,
                                  when=START + timedelta(minutes=rng.uniform(0, SPAN_HOURS * 60))))
    for topic, sentiment, core in SPANISH:
        airline = fill.airline()
        text, _ = new_text(core, airline, sentiment, decorate_it=False)
        handle, uid = customer()
        items.append(dict(key=len(items), author=handle, author_id=uid, text=text, lang="es",
                          brand=airline[0].lower(), topic=topic, sentiment=sentiment,
                          when=START + timedelta(minutes=rng.uniform(0, SPAN_HOURS * 60))))

    # A few repeat customers: some authors tweet again later about something else.
    singles = list(items)
    for it in rng.sample(singles, 12):
        other = rng.choice(singles)
        if other is not it and other["when"] > it["when"]:
            other["author"], other["author_id"] = it["author"], it["author_id"]

    # Threads: the customer's messages reuse one slot filling; replies point at the previous message.
    for conv in threads(rng, fill):
        airline = fill.airline()
        slots = fill.slots(airline)
        handle, uid = customer()
        when = START + timedelta(minutes=rng.uniform(60, SPAN_HOURS * 60 - 60 * 30))
        root_key, prev_key = None, None
        for msg in conv:
            when = when + timedelta(minutes=msg.get("after", 0), seconds=rng.randint(0, 59))
            key = len(items)
            ctx = {**slots, "c": handle}
            if "{ticket}" in msg["t"]:
                ctx["ticket"] = ("ROOT", msg["topic"])  # resolved once the root has its id
            text = msg["t"]
            ours = msg["a"] == "us"
            items.append(dict(
                key=key, author=OUR_HANDLE if ours else handle, author_id=OUR_USER_ID if ours else uid,
                text=text, ctx=ctx, lang="en", brand=airline[0].lower(), topic=msg["topic"], sentiment=msg["s"],
                when=when, reply_to=prev_key, root=root_key if root_key is not None else key,
            ))
            root_key = key if root_key is None else root_key
            prev_key = key

    # Ids in time order, like X's snowflakes.
    items.sort(key=lambda it: it["when"])
    ids: dict[int, str] = {}
    last_ms = 0
    for it in items:
        ms = int(it["when"].timestamp()) * 1000 + rng.randint(0, 999)
        ms = max(ms, last_ms + 1)
        last_ms = ms
        ids[it["key"]] = snowflake(ms, worker=rng.randint(0, 1023), sequence=rng.randint(0, 4095))
    by_key = {it["key"]: it for it in items}
    out = []
    for it in items:
        text = it["text"]
        if "ctx" in it:
            ctx = dict(it["ctx"])
            if "ticket" in ctx:
                ctx["ticket"] = ticket_id_for(ids[it["root"]], ctx["ticket"][1], key=SAMPLE_KEY)
            text = text.format(**ctx)
        rec = {
            "id": ids[it["key"]],
            "created_at": it["when"].replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "author": it["author"],
            "author_id": it["author_id"],
            "text": text,
            "lang": it["lang"],
            "brand": it["brand"],
            "in_reply_to_tweet_id": None,
            "in_reply_to_user_id": None,
            "conversation_id": ids[it.get("root", it["key"])],
            "expected_topic": it["topic"],
            "expected_sentiment": it["sentiment"],
        }
        if it.get("reply_to") is not None:
            parent = by_key[it["reply_to"]]
            rec["in_reply_to_tweet_id"] = ids[parent["key"]]
            rec["in_reply_to_user_id"] = parent["author_id"]
        assert len(text) <= 280, text
        out.append(rec)
    return out


def extras(rows: list[dict]) -> list[dict]:
    """Tweets for X's reply rules, made after ``core`` so that its tweets stay as they were: brand names
    without a mention, quotes of our tweets, an e-mail address, and an opt-out ("STOP") with a later tweet."""
    rng = random.Random(SEED + 11)
    used = {r["author"] for r in rows}
    ours = [r for r in rows if r["author"] == OUR_HANDLE]
    out: list[dict] = []

    def add(text, topic, sentiment, brand, when, by=None, author_id=None, **extra):
        tid = snowflake_at(when, worker=rng.randint(0, 1023), sequence=rng.randint(0, 4095))
        rec = {"id": tid, "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "author": by or author(rng, used),
               "author_id": author_id or user_id(rng), "text": text, "lang": "en", "brand": brand,
               "conversation_id": extra.pop("conversation_id", tid), **extra,
               "expected_topic": topic, "expected_sentiment": sentiment}
        out.append(rec)
        return rec

    def at(hours: float) -> datetime:
        return START + timedelta(hours=hours, seconds=rng.randint(0, 59))

    # Listening only: the brand's name, no mention (X forbids an automatic reply to these).
    for h, (text, topic, s, brand) in enumerate([
        ("united lost my bag AGAIN. third time this year, file EWR41872", "Baggage Issue", "negative", "united"),
        ("4 hours on the tarmac at ORD and delta still says 'on time'", "Delay and Customer Service", "negative", "delta"),
        ("southwest charged me $75 to change a flight that used to be free to change", "Extra Charges", "negative",
         "southwestair"),
        ("the jetblue app logged me out mid checkout and now the fare went up $60", "Online Booking", "negative", "jetblue"),
        ("honestly american airlines crew on the MIA flight tonight were great", "Customer Experience", "positive",
         "americanair"),
        ("does alaska air let you pick seats on the saver fare?", "Seating Preferences", "neutral", "alaskaair"),
    ]):
        add(text, topic, s, brand, at(3 + 17 * h))
    # An e-mail address is not a mention: still listening only.
    add("emailed refunds@delta.com three times about my cancelled flight refund, nothing back", "Reschedule and Refund",
        "negative", "delta", at(40))
    # Quotes of our own tweets: the customer summoned us by quoting us.
    for h, text in enumerate(["this. still waiting on my bag from last week, file ORD77120",
                              "same thing happened to me on Friday, no one has called back"]):
        src = ours[h % len(ours)]
        add(text, "Baggage Issue" if h == 0 else "Reservation Issue", "negative", src["brand"], at(70 + 9 * h),
            referenced_tweets=[{"type": "quoted", "id": src["id"], "author": OUR_HANDLE}])
    # An opt-out: a customer asks, gets our reply, says STOP, and writes again later (no automatic reply then).
    who, uid = author(rng, used), user_id(rng)
    add("@Delta my flight DL 1123 was cancelled and I still have no rebooking", "Reschedule and Refund", "negative",
        "delta", at(50), by=who, author_id=uid)
    add("@Delta STOP", "Customer Experience", "neutral", "delta", at(51), by=who, author_id=uid)
    add("@Delta still no answer about the rebooking from yesterday", "Reschedule and Refund", "negative", "delta",
        at(75), by=who, author_id=uid)
    return out


def bad_lines() -> list[str]:
    """Malformed input, one kind per line, for showing dead letters (``tweetdesk ingest replay --path``)."""
    ok = {"id": "1897000000000000001", "author": "kay_b", "created_at": "2025-03-05T10:00:00Z",
          "text": "@united where is my bag"}
    return [
        '{"id": "1897000000000000002", "text": "@united my bag is lost", "author": "kay_b"',  # truncated JSON
        json.dumps({k: v for k, v in ok.items() if k != "text"} | {"id": "1897000000000000003"}),  # no text
        json.dumps(ok | {"id": "1897000000000000004", "text": "   "}),  # blank text
        json.dumps(ok | {"id": "5.70306E+17"}),  # an id spoiled by a spreadsheet
        json.dumps({"id": 1897000000000000005, "text": ["not", "a", "string"], "author": 42,
                    "created_at": "yesterday"}),  # wrong types
        json.dumps(ok | {"id": "1897000000000000006", "text": "@delta " + "a" * 30_000}),  # longer than any post
        "[1, 2, 3]",  # JSON, but not an object
        "not json at all",
    ]


def main() -> None:
    assert {a[0] for a in AIRLINES} | {OUR_HANDLE} == set(SAMPLE_OUR_HANDLES), "config.SAMPLE_OUR_HANDLES is stale"
    rows = build()
    SAMPLE_TWEETS.parent.mkdir(parents=True, exist_ok=True)
    with open(SAMPLE_TWEETS, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) + "\n")
    bad = SAMPLE_TWEETS.parent / "sample_bad.jsonl"
    bad.write_text("\n".join(bad_lines()) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} tweets to {SAMPLE_TWEETS} and {len(bad_lines())} malformed lines to {bad}")


if __name__ == "__main__":
    main()
